//! The fully connected layer `y = x W^T + b` as one operation with a hand-written backward pass:
//! the parallel CPU kernels of [`rossl_kernels::dense`], candle's operations elsewhere.
//!
//! Through candle's autograd, `x.matmul(&w.t())` computed the weight's gradient as a transposed
//! product and then added it, strided, into a zeroed buffer, and computed it even in attack passes
//! where the weight is frozen. Here each gradient is one product in the weight's own layout, and
//! only the gradients of tracked inputs are computed.

use super::storage::{data, pair, triple, Data, Same3};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rossl_api::Result;
use rossl_kernels::{dense, profile, Element};

/// (rows, inputs, outputs) of a dense layer.
type Dims = (usize, usize, usize);

/// (rows, inputs) of `x` and (outputs, inputs) of `W`, checked against each other.
fn dims(op: &str, x: &Layout, w: &Layout) -> candle_core::Result<Dims> {
    match (x.dims(), w.dims()) {
        (&[rows, inputs], &[outputs, w_inputs]) if inputs == w_inputs => {
            Ok((rows, inputs, outputs))
        }
        (xd, wd) => Err(candle_core::Error::Msg(format!(
            "{op}: input {xd:?} does not fit a weight of shape {wd:?} (want (rows, in) and (out, in))"
        ))),
    }
}

/// `(x, W, b) -> x W^T + b`.
struct Dense;

impl CustomOp3 for Dense {
    fn name(&self) -> &'static str {
        "dense"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, inputs, outputs) = dims("dense", l1, l2)?;
        if l3.dims() != [outputs] {
            return Err(candle_core::Error::Msg(format!(
                "dense: bias of shape {:?} for {outputs} outputs",
                l3.dims()
            )));
        }
        let _t = profile::scope("dense.forward");
        let out = match triple("dense", (s1, l1), (s2, l2), (s3, l3))? {
            Same3::F32([x, w, b]) => {
                CpuStorage::F32(dense::forward(x, w, Some(b), rows, inputs, outputs))
            }
            Same3::F64([x, w, b]) => {
                CpuStorage::F64(dense::forward(x, w, Some(b), rows, inputs, outputs))
            }
        };
        Ok((out, Shape::from((rows, outputs))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = if x.track_op() {
            Some(grad.apply_op2_no_bwd(w, &DenseGrad(Wrt::Input))?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(grad.apply_op2_no_bwd(x, &DenseGrad(Wrt::Weight))?)
        } else {
            None
        };
        let db = if b.track_op() {
            Some(grad.apply_op1_no_bwd(&BiasGrad)?)
        } else {
            None
        };
        Ok((dx, dw, db))
    }
}

/// `dy -> Σ_rows dy`, the bias's gradient, with the bits of candle's `sum(0)` (candle's
/// reduction over the first axis ran on one core, strided).
struct BiasGrad;

impl CustomOp1 for BiasGrad {
    fn name(&self) -> &'static str {
        "dense-bias-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let &[rows, outputs] = l.dims() else {
            return Err(candle_core::Error::Msg(format!(
                "dense-bias-grad: gradient of shape {:?}, want (rows, outputs)",
                l.dims()
            )));
        };
        let _t = profile::scope("dense.backward");
        let out = match data(self.name(), s, l)? {
            Data::F32(dy) => CpuStorage::F32(dense::bias_grad(dy, rows, outputs)),
            Data::F64(dy) => CpuStorage::F64(dense::bias_grad(dy, rows, outputs)),
        };
        Ok((out, Shape::from(outputs)))
    }
}

/// Which gradient a [`DenseGrad`] computes.
#[derive(Clone, Copy)]
enum Wrt {
    /// `(dy, W) -> dy W`.
    Input,
    /// `(dy, x) -> dy^T x`.
    Weight,
}

/// One gradient of the dense layer from the output gradient `dy` (rows, out) and the second
/// operand: `W` (out, in) for the input's, `x` (rows, in) for the weight's.
struct DenseGrad(Wrt);

impl DenseGrad {
    /// (rows, inputs, outputs), if the two shapes fit together.
    fn dims(&self, dy: &[usize], other: &[usize]) -> Option<Dims> {
        match (self.0, dy, other) {
            (Wrt::Input, &[rows, outputs], &[o, inputs]) if o == outputs => {
                Some((rows, inputs, outputs))
            }
            (Wrt::Weight, &[rows, outputs], &[r, inputs]) if r == rows => {
                Some((rows, inputs, outputs))
            }
            _ => None,
        }
    }

    fn run<T: Element>(&self, dy: &[T], other: &[T], (rows, inputs, outputs): Dims) -> Vec<T> {
        match self.0 {
            Wrt::Input => dense::input_grad(dy, other, rows, inputs, outputs),
            Wrt::Weight => dense::weight_grad(dy, other, rows, inputs, outputs),
        }
    }
}

impl CustomOp2 for DenseGrad {
    fn name(&self) -> &'static str {
        match self.0 {
            Wrt::Input => "dense-input-grad",
            Wrt::Weight => "dense-weight-grad",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = self.dims(l1.dims(), l2.dims()).ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "{}: gradient {:?} against {:?}",
                self.name(),
                l1.dims(),
                l2.dims()
            ))
        })?;
        let _t = profile::scope("dense.backward");
        let out = match pair(self.name(), (s1, l1), (s2, l2))? {
            (Data::F32(dy), Data::F32(other)) => CpuStorage::F32(self.run(dy, other, dims)),
            (Data::F64(dy), Data::F64(other)) => CpuStorage::F64(self.run(dy, other, dims)),
            _ => unreachable!("pair returns one dtype"),
        };
        let (rows, inputs, outputs) = dims;
        let shape = match self.0 {
            Wrt::Input => (rows, inputs),
            Wrt::Weight => (outputs, inputs),
        };
        Ok((out, Shape::from(shape)))
    }
}

/// The fully connected layer `x W^T + b`: `x` (rows, in), `W` (out, in), `b` (out).
///
/// On the CPU (f32 or f64) one parallel product per pass, with the gradients of tracked inputs
/// only; elsewhere, and in other precisions (bf16), [`dense_reference`].
pub fn dense(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !super::storage::fast_cpu(x) {
        return dense_reference(x, w, b);
    }
    Ok(x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, Dense)?)
}

/// The fully connected layer with candle's operations: the path on GPUs and the reference for
/// tests.
pub fn dense_reference(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(x.matmul(&w.t()?)?.broadcast_add(b)?)
}
