//! How upstream TLS certificates are checked, with LiteLLM's keys: `litellm_settings.ssl_verify`
//! (`true`, `false`, or the path of a CA bundle), the `SSL_VERIFY` environment variable (which wins
//! over it, as in LiteLLM), and `SSL_CERT_FILE` (a CA bundle, when verification is on).
//!
//! The HTTP client (`providers/http.rs`) trusts the system's root store, or the Mozilla roots
//! built into the binary when the system has none, plus the CA bundle named here.

use std::path::PathBuf;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::litellm::SslVerify;
use super::{invalid, ConfigError, Validator};

/// Upstream TLS settings; the default verifies certificates against the system's roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `false` (`ssl_verify: false`): any certificate is accepted. A start-up warning says so.
    pub verify: bool,
    /// Roots trusted in addition to the system's, e.g. an internal CA.
    pub ca_bundle: Option<CaBundle>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            verify: true,
            ca_bundle: None,
        }
    }
}

/// A PEM file of CA certificates, and the key that named it (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaBundle {
    pub path: PathBuf,
    /// `litellm_settings.ssl_verify`, `SSL_VERIFY` or `SSL_CERT_FILE`.
    pub key: String,
}

impl CaBundle {
    /// Reads the certificates; an unreadable file, or one without a certificate, is an error
    /// naming the key and the path.
    pub fn read(&self) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
        let fail = |why: String| {
            invalid(
                &self.key,
                format!("CA bundle `{}` {why}", self.path.display()),
            )
        };
        let pem =
            std::fs::read(&self.path).map_err(|err| fail(format!("cannot be read: {err}")))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| fail(format!("is not valid PEM: {err}")))?;
        if certs.is_empty() {
            return Err(fail("holds no PEM certificate".into()));
        }
        Ok(certs)
    }
}

/// LiteLLM's reading of a boolean string (`str_to_bool`): only `true` and `false`, any case.
fn bool_text(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

impl Validator<'_> {
    /// LiteLLM's `get_ssl_verify`: `SSL_VERIFY`, else `litellm_settings.ssl_verify`; a value that
    /// is not `true`/`false` is a CA bundle path; with verification on and no bundle yet,
    /// `SSL_CERT_FILE` names one. (LiteLLM ignores a path that does not exist; here it is an
    /// error, so a typo cannot silently turn an internal CA off.)
    pub(super) fn tls(
        &mut self,
        ssl_verify: Option<SslVerify>,
    ) -> Result<TlsSettings, ConfigError> {
        let (value, key) = match self.env_var("SSL_VERIFY").filter(|v| !v.trim().is_empty()) {
            Some(text) => (Some(SslVerify::Text(text)), "SSL_VERIFY (environment)"),
            None => (ssl_verify, "litellm_settings.ssl_verify"),
        };
        let mut tls = TlsSettings::default();
        match value {
            None => {}
            Some(SslVerify::Bool(verify)) => tls.verify = verify,
            Some(SslVerify::Text(text)) => {
                let text = self.resolve(&text, key)?;
                match bool_text(&text) {
                    Some(verify) => tls.verify = verify,
                    None => {
                        tls.ca_bundle = Some(CaBundle {
                            path: PathBuf::from(text),
                            key: key.to_owned(),
                        })
                    }
                }
            }
        }
        if !tls.verify {
            self.warn(format!(
                "{key} is false: upstream TLS certificates are not verified (anyone on the path can read and change upstream traffic, provider keys included)"
            ));
            return Ok(tls);
        }
        if tls.ca_bundle.is_none() {
            tls.ca_bundle = self
                .env_var("SSL_CERT_FILE")
                .filter(|path| !path.is_empty())
                .map(|path| CaBundle {
                    path: PathBuf::from(path),
                    key: "SSL_CERT_FILE (environment)".to_owned(),
                });
        }
        if let Some(bundle) = &tls.ca_bundle {
            bundle.read()?;
        }
        Ok(tls)
    }
}
