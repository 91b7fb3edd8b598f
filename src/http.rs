//! HTTP and TLS for the whole process: one rustls configuration (one crypto provider,
//! ring; one root store, loaded once) behind both the SDK's HTTP client and the client
//! that PUTs the CloudFormation response.
//!
//! The SDK's client is [`SdkHttpClient`]: the SDK's `HttpClient` trait on reqwest, so
//! there is one HTTP stack (hyper 1, rustls 0.23) in the binary instead of the SDK's
//! bundled one (aws-lc-rs) next to reqwest's.
//!
//! Trust is the standard one: `SSL_CERT_FILE` / `SSL_CERT_DIR`, else the system bundle
//! (`rustls-native-certs`, `openssl-probe`). Reading and parsing it costs a millisecond
//! or two of CPU (some 150 certificates), so it is read once, by [`preload_roots`] on a
//! side thread during init, or by the first certificate to verify, whichever comes
//! first.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::settings::Settings;

/// The SDK's standard retry (more attempts than its default) and timeouts so a hung
/// connection cannot eat the budget. Endpoints, region and credentials come from the
/// environment the SDK's standard way; HTTP is [`SdkHttpClient`].
pub fn sdk_loader(settings: &Settings) -> ConfigLoader {
    // The connector for exactly these timeouts is made now, so that `preconnect` can
    // open a connection into the pool the SDK's calls use.
    let http = SdkHttpClient::default();
    http.connector((Some(settings.sdk_connect_timeout), None));
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(SharedHttpClient::new(http))
        .retry_config(RetryConfig::standard().with_max_attempts(settings.sdk_max_attempts))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(settings.sdk_connect_timeout)
                .operation_attempt_timeout(settings.sdk_attempt_timeout)
                .build(),
        )
}

/// The HTTP client for CloudFormation responses, on the shared TLS configuration.
pub fn response_client() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config().clone())
        .connect_timeout(Duration::from_secs(5))
        // The answer goes only where CloudFormation asked: a 3xx is "not delivered".
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("TLS backend initialises")
}

/// The one TLS client configuration. Clones share its verifier (so its root store) and
/// its session cache.
pub fn tls_config() -> &'static rustls::ClientConfig {
    static CONFIG: OnceLock<rustls::ClientConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .dangerous() // only to defer loading the roots: verification is WebPKI's
            .with_custom_certificate_verifier(Arc::new(SystemRoots { provider }))
            .with_no_client_auth()
    })
}

/// Loads the trusted roots on a side thread now, so that the first handshake finds
/// them ready. Harmless when nothing ever needs them but a little CPU.
pub fn preload_roots() {
    let _ = std::thread::Builder::new()
        .name("tls-roots".into())
        .spawn(|| {
            let _ = roots();
        });
}

/// The WebPKI verifier over the system's roots, built once, by whoever asks first.
fn roots() -> &'static Result<Arc<WebPkiServerVerifier>, String> {
    static ROOTS: OnceLock<Result<Arc<WebPkiServerVerifier>, String>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = load_roots();
        if !found.errors.is_empty() {
            tracing::warn!(
                "some trusted root certificates were unreadable: {:?}",
                found.errors
            );
        }
        let mut store = rustls::RootCertStore::empty();
        let (_, unparsable) = store.add_parsable_certificates(found.certs);
        if unparsable > 0 {
            tracing::warn!("{unparsable} trusted root certificates could not be parsed");
        }
        let provider = tls_provider();
        WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
            .build()
            .map(|v| v as Arc<WebPkiServerVerifier>)
            .map_err(|e| {
                let why = format!("no usable trusted root certificates: {e}");
                tracing::error!("{why}");
                why
            })
    })
}

/// The standard trust store: `SSL_CERT_FILE` / `SSL_CERT_DIR` when either is set;
/// otherwise the system bundle file, the one OpenSSL loads (its hashed directory holds
/// the same certificates again, some 300 more files to open on Debian, and OpenSSL only
/// looks there by hash), or that directory when there is no bundle.
fn load_roots() -> rustls_native_certs::CertificateResult {
    if !openssl_probe::has_ssl_cert_env_vars() {
        if let Some(file) = openssl_probe::probe().cert_file {
            return rustls_native_certs::load_certs_from_paths(Some(&file), None);
        }
    }
    rustls_native_certs::load_native_certs()
}

fn tls_provider() -> Arc<CryptoProvider> {
    tls_config().crypto_provider().clone()
}

/// WebPKI verification against the system roots, loaded when first needed.
#[derive(Debug)]
struct SystemRoots {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SystemRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match roots() {
            Ok(verifier) => verifier.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            Err(why) => Err(rustls::Error::General(why.clone())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The SDK's HTTP client: the SDK's `HttpClient` trait on reqwest and [`tls_config`].
/// One reqwest client (one connection pool) per distinct timeout setting, which in
/// this function means one.
#[derive(Debug, Default)]
pub struct SdkHttpClient {
    connectors: Mutex<Vec<(TimeoutKey, SharedHttpConnector)>>,
}

/// Connect and read timeouts.
type TimeoutKey = (Option<Duration>, Option<Duration>);

/// The first SDK connection pool made in this process (`sdk_loader`'s), for [`preconnect`].
static FIRST_POOL: OnceLock<reqwest::Client> = OnceLock::new();

/// Opens a connection to `url` in the SDK's connection pool with one GET (its answer
/// does not matter), so the first call to that endpoint finds it open. At most
/// `limit`; false when it failed.
pub async fn preconnect(url: &str, limit: Duration) -> bool {
    let Some(client) = FIRST_POOL.get() else {
        return false;
    };
    match client.get(url).timeout(limit).send().await {
        Ok(answer) => answer.bytes().await.is_ok(),
        Err(e) => {
            tracing::debug!("preconnect to {url} failed: {e}");
            false
        }
    }
}

impl HttpClient for SdkHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.connector((settings.connect_timeout(), settings.read_timeout()))
    }
}

impl SdkHttpClient {
    fn connector(&self, key: TimeoutKey) -> SharedHttpConnector {
        let mut connectors = self.connectors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, c)) = connectors.iter().find(|(k, _)| *k == key) {
            return c.clone();
        }
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config().clone())
            .redirect(reqwest::redirect::Policy::none());
        if let Some(t) = key.0 {
            builder = builder.connect_timeout(t);
        }
        if let Some(t) = key.1 {
            builder = builder.read_timeout(t);
        }
        let client = builder.build().expect("TLS backend initialises");
        let _ = FIRST_POOL.set(client.clone());
        let connector = SharedHttpConnector::new(ReqwestConnector { client });
        connectors.push((key, connector.clone()));
        connector
    }
}

#[derive(Debug)]
struct ReqwestConnector {
    client: reqwest::Client,
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let method = reqwest::Method::from_bytes(request.method().as_bytes())
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            let body = request
                .body()
                .bytes()
                .ok_or_else(|| {
                    ConnectorError::other("streaming request bodies are not supported".into(), None)
                })?
                .to_vec();
            let mut out = client.request(method, request.uri());
            for (name, value) in request.headers() {
                out = out.header(name, value);
            }
            let response = out.body(body).send().await.map_err(connector_error)?;
            let status = StatusCode::try_from(response.status().as_u16())
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(connector_error)?;
            let mut answer = HttpResponse::new(status, SdkBody::from(body));
            for (name, value) in &headers {
                if let Ok(value) = value.to_str() {
                    answer
                        .headers_mut()
                        .append(name.as_str().to_owned(), value.to_owned());
                }
            }
            Ok(answer)
        })
    }
}

/// Timeouts and I/O failures are transient (the SDK retries them); a TLS failure such
/// as an untrusted certificate, or a request that cannot be built, is not.
fn connector_error(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_builder() || is_tls_failure(&e) {
        ConnectorError::other(e.into(), None)
    } else {
        ConnectorError::io(e.into())
    }
}

/// Whether a rustls error is among the causes. hyper-rustls nests it two `io::Error`s
/// deep, and an `io::Error`'s `source()` skips its payload, so payloads are visited.
pub(crate) fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if err.is::<rustls::Error>() {
            return true;
        }
        next = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::Region;
    use aws_smithy_runtime_api::client::result::SdkError;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Answers each connection's requests with `answers`, in turn; returns the port and
    /// the requests seen (head and body as text).
    async fn server(answers: Vec<(u16, &'static str)>) -> (u16, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut answers = answers.into_iter();
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                loop {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let text = loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break None;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text[..end]
                                .lines()
                                .find_map(|l| {
                                    let l = l.to_ascii_lowercase();
                                    l.strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap())
                                })
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + length {
                                break Some(text);
                            }
                        }
                    };
                    let Some(text) = text else { break };
                    log.lock().unwrap().push(text);
                    let (status, body) = answers.next().expect("an answer left");
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.0\r\n\
                         content-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    sock.write_all(reply.as_bytes()).await.unwrap();
                }
            }
        });
        (port, seen)
    }

    async fn dynamodb(endpoint: String, attempts: u32) -> aws_sdk_dynamodb::Client {
        let settings = Settings {
            sdk_max_attempts: attempts,
            ..Settings::default()
        };
        let config = sdk_loader(&settings)
            .endpoint_url(endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                "AKID", "secret", None, None, "test",
            ))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(attempts)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .load()
            .await;
        aws_sdk_dynamodb::Client::new(&config)
    }

    #[tokio::test]
    async fn sdk_calls_go_through_reqwest_with_headers_body_and_answer_intact() {
        let (port, seen) = server(vec![
            (500, r#"{"__type":"InternalServerError","message":"again"}"#),
            (200, r#"{"RevisionId":"r-1"}"#),
        ])
        .await;
        let client = dynamodb(format!("http://127.0.0.1:{port}"), 3).await;
        let out = client
            .put_resource_policy()
            .resource_arn("arn:aws:dynamodb:us-east-1:123456789012:table/t")
            .policy("{}")
            .send()
            .await
            .expect("a 500 then a 200: the SDK retries over this client");
        assert_eq!(out.revision_id(), Some("r-1"));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        let request = seen[1].to_ascii_lowercase();
        assert!(request.starts_with("post / http/1.1"), "{request}");
        assert!(request.contains("x-amz-target: dynamodb_20120810.putresourcepolicy"));
        assert!(request.contains("authorization: aws4-hmac-sha256"));
        assert!(request.contains(r#""policy":"{}""#), "{request}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_io_error_the_sdk_retries() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let client = dynamodb(format!("http://127.0.0.1:{port}"), 2).await;
        let err = client
            .get_resource_policy()
            .resource_arn("arn:aws:dynamodb:us-east-1:123456789012:table/t")
            .send()
            .await
            .expect_err("nothing listens");
        match err {
            SdkError::DispatchFailure(f) => assert!(f.is_io(), "{f:?}"),
            other => panic!("expected a dispatch failure, got {other:?}"),
        }
    }

    #[test]
    fn a_rustls_error_nested_in_io_errors_is_a_tls_failure() {
        let rejected = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert!(is_tls_failure(&rejected));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!is_tls_failure(&refused));
        let eof = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "tls handshake eof",
        ));
        assert!(!is_tls_failure(&eof));
    }

    #[test]
    fn one_tls_configuration_on_ring() {
        let a = tls_config();
        let b = tls_config();
        assert!(std::ptr::eq(a, b));
        assert!(!a.crypto_provider().cipher_suites.is_empty());
        assert!(a.alpn_protocols.is_empty());
    }
}
