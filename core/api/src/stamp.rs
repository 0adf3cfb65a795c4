//! The ABI stamp: what a dynamic plugin must share with its host, embedded in the plugin by
//! [`declare_plugin!`](crate::declare_plugin) and checked by the host before it loads anything.
//!
//! It covers what a plugin links: the sources of rossl-api, rossl-nn and rossl-kernels (hashed
//! by this crate's build script), the candle version, the compiler, the target, the profile and
//! the backend features. The runtime is not part of it: a host whose runtime changed still loads
//! the plugins built before.

/// Version of the plugin interface (the traits and the registration macro); bumped when they
/// change incompatibly. 2: `FitContext` lost its unused `training_attack` field. 3: the API moved
/// out of the former single core crate into rossl-api and rossl-nn (the runtime became
/// rossl-runtime, the kernels rossl-kernels); `Classifier::tensors`; attack specs without names.
/// 4: `Objective::evaluate` became `Objective::score`; the module `data` became `batch`.
/// 5: targeted attacks and `Norm` (AutoAttack, L2). 6: `SslLoss::loss_of`, `uses_labels`, `uses_clean`,
/// `uses_target`, `needs_teacher` and `parameters`; `LossInput::attack` (losses with labels and weights of their own); `BuildContext::feature_dim` and `projection_dim`.
/// 7: `ViewStrategy::at_strength` (augmentation-strength annealing), `Encoder::dual_batch_norm`
/// and `Encoder::select_branch` (dual batch norm). 8: `FitContext::copy_encoder` (fine-tuning
/// evaluators), `Classifier::fit_cost`, and the evaluator keys the runtime reserves
/// (`RUNTIME_KEYS`). 9: `Objective::score_rows` (score-based attacks query some rows of a
/// batch). 10: `Encoder::windowed`, `Classifier::windowed` and `Objective::windowed` (passes
/// over images changed inside one window each).
pub const PLUGIN_API_VERSION: u32 = 10;

/// The name of the ELF section that holds a plugin's stamp.
pub const STAMP_SECTION: &str = ".rossl_abi";

/// This build's stamp: `field=value` pairs separated by `|`.
pub const STAMP: &str = concat!(
    "rossl-abi|api=10|version=",
    env!("CARGO_PKG_VERSION"),
    "|source=",
    env!("ROSSL_SOURCE_HASH"),
    "|candle=",
    env!("ROSSL_CANDLE_VERSION"),
    "|rustc=",
    env!("ROSSL_RUSTC_VERSION"),
    "|target=",
    env!("ROSSL_TARGET"),
    "|profile=",
    env!("ROSSL_PROFILE"),
    "|features=",
    env!("ROSSL_FEATURES")
);

/// The length of [`STAMP`] in bytes.
pub const STAMP_LEN: usize = STAMP.len();

/// [`STAMP`] as a byte array (for the plugin's stamp section).
pub const fn stamp_bytes() -> [u8; STAMP_LEN] {
    let bytes = STAMP.as_bytes();
    let mut out = [0u8; STAMP_LEN];
    let mut i = 0;
    while i < STAMP_LEN {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// A parsed stamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbiStamp {
    /// Plugin API version.
    pub api: String,
    /// rossl-api version.
    pub version: String,
    /// Hash of the sources of rossl-api, rossl-nn and rossl-kernels.
    pub source: String,
    /// candle's version.
    pub candle: String,
    /// The rustc that built it.
    pub rustc: String,
    /// The target triple.
    pub target: String,
    /// `debug` or `release`.
    pub profile: String,
    /// Backend features (`cpu`, `cuda`, `cuda+cudnn`).
    pub features: String,
}

impl AbiStamp {
    /// The host's stamp.
    pub fn host() -> Self {
        Self::parse(STAMP).expect("the host's own stamp parses")
    }

    /// Parses `rossl-abi|api=..|version=..|...`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split('|');
        if parts.next() != Some("rossl-abi") {
            return Err(format!("`{text}` does not start with `rossl-abi`"));
        }
        let mut field = |name: &str| -> Result<String, String> {
            parts
                .next()
                .and_then(|p| p.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .map(str::to_string)
                .ok_or_else(|| format!("no `{name}` field in `{text}`"))
        };
        Ok(AbiStamp {
            api: field("api")?,
            version: field("version")?,
            source: field("source")?,
            candle: field("candle")?,
            rustc: field("rustc")?,
            target: field("target")?,
            profile: field("profile")?,
            features: field("features")?,
        })
    }

    /// What differs between the host's stamp (`self`) and a plugin's, one phrase per field.
    pub fn differences(&self, plugin: &AbiStamp) -> Vec<String> {
        let fields = [
            ("plugin API version", &self.api, &plugin.api),
            ("rossl version", &self.version, &plugin.version),
            (
                "rossl-api, rossl-nn and rossl-kernels sources",
                &self.source,
                &plugin.source,
            ),
            ("candle version", &self.candle, &plugin.candle),
            ("rustc", &self.rustc, &plugin.rustc),
            ("target", &self.target, &plugin.target),
            ("profile", &self.profile, &plugin.profile),
            ("backend features", &self.features, &plugin.features),
        ];
        fields
            .iter()
            .filter(|(_, host, theirs)| host != theirs)
            .map(|(name, host, theirs)| {
                format!("{name}: the host has `{host}`, the plugin `{theirs}`")
            })
            .collect()
    }
}

/// Declares the library being compiled a rossl plugin: embeds the ABI stamp (in the `.rossl_abi`
/// section and behind the `extern "C"` function `rossl_plugin_abi_stamp`). Call it once per
/// plugin library, next to the `register!` calls.
#[macro_export]
macro_rules! declare_plugin {
    () => {
        #[used]
        #[link_section = ".rossl_abi"]
        static ROSSL_PLUGIN_ABI_STAMP: [u8; $crate::stamp::STAMP_LEN] =
            $crate::stamp::stamp_bytes();

        /// The ABI stamp of this plugin: rossl reads it before using anything else.
        ///
        /// # Safety
        /// `len` must be null or point to writable memory for one `usize`.
        #[no_mangle]
        pub unsafe extern "C" fn rossl_plugin_abi_stamp(len: *mut usize) -> *const u8 {
            if !len.is_null() {
                // SAFETY: the caller passes a valid pointer or null.
                unsafe { *len = $crate::stamp::STAMP_LEN };
            }
            ROSSL_PLUGIN_ABI_STAMP.as_ptr()
        }
    };
}

/// The hash of the stamp's sources: every `.rs` file under each of `roots` and each root's
/// `Cargo.toml`, by path relative to its root and content (FNV-1a). The build script computes
/// [`STAMP`]'s `source` field with this very function.
pub fn source_hash(roots: &[std::path::PathBuf]) -> u64 {
    hash::source_hash(roots)
}

mod hash {
    include!("../stamp_hash.rs");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_parse_and_differences_name_the_fields() {
        let host = AbiStamp::host();
        assert_eq!(host.api, PLUGIN_API_VERSION.to_string());
        let mut other = host.clone();
        other.profile = "elsewhere".into();
        other.rustc = "rustc 0.0.1".into();
        let d = host.differences(&other);
        assert_eq!(d.len(), 2);
        assert!(
            d[0].contains("rustc") && d[1].contains("profile: the host has"),
            "{d:?}"
        );
        assert!(AbiStamp::parse("nonsense").is_err());
        assert_eq!(stamp_bytes().as_slice(), STAMP.as_bytes());
    }
}

#[cfg(test)]
mod api_version_tests {
    use super::*;

    #[test]
    fn the_stamp_carries_the_plugin_api_version() {
        // `concat!` takes literals only, so the stamp spells the version out: keep them equal
        assert!(
            STAMP.starts_with(&format!("rossl-abi|api={PLUGIN_API_VERSION}|")),
            "{STAMP}"
        );
    }
}
