//! `cifar10-c`: one corruption at one severity of the published CIFAR-10-C or CIFAR-100-C arrays
//! ([`crate::cifar_c::load_corrupted`]), as a test split. Evaluations read it through
//! `eval.corruptions.files`.

use crate::cifar_c::load_corrupted;
use rossl_api::components::{Dataset, DatasetInfo, ImageSet, Split};
use rossl_api::registry::{ParamError, Params};
use rossl_api::{Error, Result};
use std::path::PathBuf;

rossl_api::params! {
    /// Parameters of `cifar10-c`.
    pub struct CifarCParams {
        /// The folder holding `<corruption>.npy` and `labels.npy` (CIFAR-10-C: Zenodo record
        /// 2535967; CIFAR-100-C: record 3555552).
        pub root: PathBuf = PathBuf::from("data/CIFAR-10-C"),
        /// The corruption's file stem, e.g. `gaussian_noise`.
        pub corruption: String = "gaussian_noise".into(),
        /// The severity, 1 to 5.
        pub severity: u8 = 1,
        /// 10 (CIFAR-10-C) or 100 (CIFAR-100-C).
        pub classes: usize = 10,
        /// The first images of the severity's block to read (0: all 10,000).
        pub images: usize = 0,
    }
}

impl Params for CifarCParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if !(1..=5).contains(&self.severity) {
            return Err(ParamError::new("severity", "severities are 1 to 5"));
        }
        if !matches!(self.classes, 10 | 100) {
            return Err(ParamError::new(
                "classes",
                "10 (CIFAR-10-C) or 100 (CIFAR-100-C)",
            ));
        }
        Ok(())
    }

    fn paths_mut(&mut self) -> Vec<(&'static str, &mut PathBuf)> {
        vec![("root", &mut self.root)]
    }
}

/// One corruption and severity of the published arrays.
pub struct CifarC {
    params: CifarCParams,
}

impl Dataset for CifarC {
    fn info(&self) -> DatasetInfo {
        DatasetInfo {
            channels: 3,
            height: 32,
            width: 32,
            classes: self.params.classes,
        }
    }

    fn load(&self, split: Split) -> Result<ImageSet> {
        if split == Split::Train {
            return Err(Error::msg(
                "`cifar10-c` holds corrupted test images only: it has no training split",
            ));
        }
        let p = &self.params;
        let limit = (p.images > 0).then_some(p.images);
        let set = load_corrupted(&p.root, &p.corruption, p.severity, limit)?;
        if set.classes != p.classes {
            return Err(Error::msg(format!(
                "{}: its labels have {} classes, `data.cifar10-c.classes` says {}",
                p.root.join("labels.npy").display(),
                set.classes,
                p.classes
            )));
        }
        Ok(set)
    }
}

rossl_api::register! {
    kind: dataset,
    name: "cifar10-c",
    summary: "one corruption and severity of the published CIFAR-10-C / CIFAR-100-C arrays (test images only)",
    params: CifarCParams,
    build: |p, _ctx| Ok(Box::new(CifarC { params: p })),
}
