//! A NaN loss stops a run with a message naming the loss, the pass, the batch and the step, and
//! keeps the last good checkpoint.

mod common;
use candle_core::{Device, Tensor};
use common::{assemble, temp_dir};
use rossl::rossl_runtime::checkpoint;
use rossl::rossl_runtime::run_dir::{files, RunDir};
use rossl::rossl_runtime::train::train;

/// A loss for this test: 0 for its first `after` calls, then NaN.
#[derive(serde::Serialize, serde::Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct NanLaterParams {
    after: usize,
}
impl rossl::rossl_api::registry::Params for NanLaterParams {}
struct NanLater {
    after: usize,
    calls: std::sync::atomic::AtomicUsize,
}
impl rossl::rossl_api::components::SslLoss for NanLater {
    fn loss(&self, z: &Tensor, _views: usize) -> rossl::rossl_api::Result<Tensor> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let value = if n < self.after { 0.0 } else { f64::NAN };
        Ok(((z.sum_all()? * 0.0)? + value)?)
    }
}
rossl::rossl_api::register! {
    kind: loss,
    name: "test-nan-later",
    summary: "test only: NaN after a number of calls",
    params: NanLaterParams,
    build: |p, _ctx| Ok(Box::new(NanLater { after: p.after, calls: Default::default() })),
}

#[test]
fn a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let dir = temp_dir("nan");
    // 6 batches per pass: the NaN comes in the second pass
    let asm = assemble(
        &dir,
        &[
            "train.epochs=3",
            "loss.terms=[{ name = \"invariance\" }, { name = \"test-nan-later\" }]",
            "loss.test-nan-later.after=8",
        ],
    );
    let run_dir = RunDir::for_config(&asm.config).unwrap();
    run_dir.create().unwrap();
    let message = train(&asm, &run_dir, None).unwrap_err().to_string();
    assert!(
        message.contains("NaN") && message.contains("test-nan-later"),
        "{message}"
    );
    assert!(message.contains("pass 2, batch 2, step 9"), "{message}");
    assert!(
        message.contains("last good checkpoint") && message.contains(files::CHECKPOINT),
        "{message}"
    );
    let ckpt = checkpoint::load(&run_dir.file(files::CHECKPOINT), &Device::Cpu).unwrap();
    assert_eq!(
        (
            ckpt.state.epochs_done,
            ckpt.state.steps,
            ckpt.state.complete
        ),
        (1, 6, false)
    );
    assert!(!run_dir.file(files::SUMMARY).exists());
}
