//! The ABI stamp: what a plugin must share with its host.

/// Version of the plugin interface (the traits and the registration macro); bumped when they
/// change incompatibly. 2: `FitContext` lost its unused `training_attack` field.
pub const PLUGIN_API_VERSION: u32 = 2;

/// The name of the ELF section that holds a plugin's stamp.
pub const STAMP_SECTION: &str = ".rossl_abi";

/// This rossl-core's stamp: `field=value` pairs separated by `|`.
pub const STAMP: &str = concat!(
    "rossl-abi|api=2|core=",
    env!("CARGO_PKG_VERSION"),
    "|source=",
    env!("ROSSL_SOURCE_HASH"),
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
    /// rossl-core version.
    pub core: String,
    /// Hash of rossl-core's sources.
    pub source: String,
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

    /// Parses `rossl-abi|api=..|core=..|...`.
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
            core: field("core")?,
            source: field("source")?,
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
            ("rossl-core version", &self.core, &plugin.core),
            ("rossl-core sources", &self.source, &plugin.source),
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
