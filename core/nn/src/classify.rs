//! Classification helpers: losses per example, predictions, features.

use candle_core::{DType, Device, Tensor, D};
use rossl_api::batch::image_batch;
use rossl_api::components::{FrozenEncoder, ImageSet};
use rossl_api::Result;

/// `log_softmax` along the last dimension (max-subtracted, differentiable).
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let log_sum = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&log_sum)?)
}

/// Labels as a u32 tensor on `device`.
pub fn labels_tensor(labels: &[u32], device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_slice(labels, labels.len(), device)?)
}

/// Cross-entropy of each example (B,) for logits (B, C) and labels (B,) u32.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let picked = log_softmax(logits)?
        .gather(&labels.unsqueeze(1)?, 1)?
        .squeeze(1)?;
    Ok(picked.neg()?)
}

/// The Carlini-Wagner margin of each example (B,): the largest other logit minus the true one
/// (positive when the example is misclassified).
pub fn margin_loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let classes = logits.dim(1)?;
    let one_hot = labels
        .unsqueeze(1)?
        .broadcast_eq(&Tensor::arange(0u32, classes as u32, logits.device())?.unsqueeze(0)?)?
        .to_dtype(logits.dtype())?;
    let true_logit = (logits * &one_hot)?.sum(D::Minus1)?;
    let others = (logits - (one_hot * 1e9)?)?.max(D::Minus1)?;
    Ok((others - true_logit)?)
}

/// The difference of logits ratio of each example (B,) (Croce and Hein 2020):
/// `-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)`, with `z_pi1 >= z_pi2 >= z_pi3` the
/// largest logits. Invariant to shifting and scaling the logits; needs at least three classes.
pub fn dlr_loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let classes = logits.dim(1)?;
    if classes < 3 {
        return Err(rossl_api::Error::msg(format!(
            "the DLR loss needs at least 3 classes, the logits have {classes}"
        )));
    }
    let numerator = margin_loss(logits, labels)?;
    let first = logits.max_keepdim(D::Minus1)?;
    let second = without_largest(logits)?;
    let third = without_largest(&second)?;
    let spread = (first.squeeze(1)? - third.max(D::Minus1)?)?;
    Ok(numerator.broadcast_div(&(spread + 1e-12)?)?)
}

/// The logit of class `classes` (B,) u32 in each row of `logits` (B, C), shape (B,).
fn logit_of(logits: &Tensor, classes: &Tensor) -> Result<Tensor> {
    Ok(logits.gather(&classes.unsqueeze(1)?, 1)?.squeeze(1)?)
}

/// The targeted margin of each example (B,): the target's logit minus the true one,
/// `z_t - z_y` (positive when the target wins). FAB-T's boundary function.
pub fn targeted_margin(logits: &Tensor, labels: &Tensor, targets: &Tensor) -> Result<Tensor> {
    Ok((logit_of(logits, targets)? - logit_of(logits, labels)?)?)
}

/// The targeted difference of logits ratio of each example (B,) (Croce and Hein 2020, APGD-T):
/// `-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)` with `z_pi1 >= z_pi2 >= ...` the
/// sorted logits. Needs at least four classes.
pub fn targeted_dlr_loss(logits: &Tensor, labels: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let classes = logits.dim(1)?;
    if classes < 4 {
        return Err(rossl_api::Error::msg(format!(
            "the targeted DLR loss needs at least 4 classes, the logits have {classes}"
        )));
    }
    let numerator = targeted_margin(logits, labels, targets)?;
    let first = logits.max(D::Minus1)?;
    let second = without_largest(logits)?;
    let third = without_largest(&second)?;
    let fourth = without_largest(&third)?;
    let low = ((third.max(D::Minus1)? + fourth.max(D::Minus1)?)? * 0.5)?;
    let spread = (first - low)?;
    Ok(numerator.broadcast_div(&(spread + 1e-12)?)?)
}

/// Cross-entropy towards `targets`, negated (B,): maximising it moves each example towards its
/// target class.
pub fn targeted_cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    Ok(cross_entropy(logits, targets)?.neg()?)
}

/// The class of rank `rank` (1: the largest) of each row of `logits`, shape (B,) u32. With the
/// true class on top (a correctly classified example), rank 2 is the most likely other class.
pub fn class_of_rank(logits: &Tensor, rank: usize) -> Result<Tensor> {
    let mut rest = logits.detach();
    for _ in 1..rank {
        rest = without_largest(&rest)?;
    }
    Ok(rest.argmax(D::Minus1)?)
}

/// `logits` with the largest entry of each row pushed down by 1e9 (so that the row's maximum is
/// its second largest entry).
fn without_largest(logits: &Tensor) -> Result<Tensor> {
    let classes = logits.dim(1)?;
    let top = logits.detach().argmax_keepdim(D::Minus1)?;
    let mask = top
        .broadcast_eq(&Tensor::arange(0u32, classes as u32, logits.device())?.unsqueeze(0)?)?
        .to_dtype(logits.dtype())?;
    Ok((logits - (mask * 1e9)?)?)
}

/// The predicted class of each row of `logits`.
pub fn predictions(logits: &Tensor) -> Result<Vec<u32>> {
    Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?)
}

/// The fraction of `predicted` equal to `labels`.
pub fn accuracy(predicted: &[u32], labels: &[u32]) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    predicted.iter().zip(labels).filter(|(p, l)| p == l).count() as f64 / labels.len() as f64
}

/// The probed features (N, F) of every image of `set`, in order, computed in batches.
pub fn extract_features(
    encoder: FrozenEncoder<'_>,
    set: &ImageSet,
    batch: usize,
    device: &Device,
) -> Result<Tensor> {
    let mut chunks = Vec::new();
    let indices: Vec<usize> = (0..set.len()).collect();
    for part in indices.chunks(batch.max(1)) {
        let (x, _) = image_batch(set, part, device)?;
        chunks.push(encoder.features(&x)?.detach().to_dtype(DType::F32)?);
    }
    Ok(Tensor::cat(&chunks, 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_and_margin_by_hand() -> Result<()> {
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[1.0f32, 2.0, 3.0], [0.0, 0.0, 0.0]], &dev)?;
        let labels = labels_tensor(&[2, 0], &dev)?;
        // PyTorch: F.cross_entropy(torch.tensor([[1.,2,3],[0,0,0]]), torch.tensor([2,0]),
        //   reduction="none") = [0.40760596, 1.09861229]
        let ce = cross_entropy(&logits, &labels)?.to_vec1::<f32>()?;
        assert!(
            (ce[0] - 0.407_606).abs() < 1e-5 && (ce[1] - 1.098_612).abs() < 1e-5,
            "{ce:?}"
        );
        let m = margin_loss(&logits, &labels)?.to_vec1::<f32>()?;
        assert!((m[0] + 1.0).abs() < 1e-6 && m[1].abs() < 1e-6, "{m:?}");
        assert_eq!(predictions(&logits)?, vec![2, 0]);
        // DLR: -(z_y - max_other) / (z1 - z3); row 0: -(3 - 2) / (3 - 1) = -0.5
        let four = Tensor::new(&[[1.0f32, 2.0, 3.0, 0.5], [4.0, 1.0, 0.0, 2.0]], &dev)?;
        let labels = labels_tensor(&[2, 1], &dev)?;
        let d = dlr_loss(&four, &labels)?.to_vec1::<f32>()?;
        // row 1: -(1 - 4) / (4 - 1) = 1
        assert!(
            (d[0] + 0.5).abs() < 1e-6 && (d[1] - 1.0).abs() < 1e-6,
            "{d:?}"
        );
        // scale and shift invariant: 10 z + 3 gives the same values
        let d2 = dlr_loss(&((four * 10.0)? + 3.0)?, &labels)?.to_vec1::<f32>()?;
        assert!((d2[0] - d[0]).abs() < 1e-6 && (d2[1] - d[1]).abs() < 1e-6);
        assert_eq!(accuracy(&[2, 1], &[2, 0]), 0.5);
        Ok(())
    }

    #[test]
    fn targeted_losses_by_hand() -> Result<()> {
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[5.0f32, 1.0, 3.0, 2.0, 0.0]], &dev)?;
        let (labels, targets) = (labels_tensor(&[0], &dev)?, labels_tensor(&[3], &dev)?);
        // z_t - z_y = 2 - 5 = -3
        let m = targeted_margin(&logits, &labels, &targets)?.to_vec1::<f32>()?;
        assert!((m[0] + 3.0).abs() < 1e-6, "{m:?}");
        // AutoAttack: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2) = -3 / (5 - (2 + 1) / 2) = -3 / 3.5
        let d = targeted_dlr_loss(&logits, &labels, &targets)?.to_vec1::<f32>()?;
        assert!((d[0] + 3.0 / 3.5).abs() < 1e-6, "{d:?}");
        // PyTorch: -F.cross_entropy(torch.tensor([[5.,1,3,2,0]]), torch.tensor([3])) = -3.1907658
        let c = targeted_cross_entropy(&logits, &targets)?.to_vec1::<f32>()?;
        assert!((c[0] + 3.190_766).abs() < 1e-5, "{c:?}");
        // ranks: 1 -> class 0, 2 -> class 2, 3 -> class 3, 5 -> class 4
        let ranks: Vec<u32> = [1, 2, 3, 5]
            .iter()
            .map(|&r| Ok(class_of_rank(&logits, r)?.to_vec1::<u32>()?[0]))
            .collect::<Result<_>>()?;
        assert_eq!(ranks, vec![0, 2, 3, 4]);
        Ok(())
    }
}
