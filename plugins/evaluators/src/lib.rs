//! rossl's built-in evaluators, each fitting a classifier on a frozen encoder (evaluation mode,
//! the head's first-layer feature): `linear-probe` (standard linear fine-tuning), `robust-linear-probe`
//! (the head trained on PGD examples made through the frozen encoder), `multi-crop-probe`
//! (EMP-SSL's bag of features: features averaged over random crops; attacked with expectation over
//! transformation) and `knn` (k nearest neighbours, cosine similarity, temperature-weighted votes).
#![warn(missing_docs)]

pub mod corruptions;
pub mod knn;
pub mod linear;
pub mod multi_crop;
pub mod robust;
mod training;
