//! The one place that answers CloudFormation: where the answer may go (allowed
//! hosts), what it may say (4096 bytes), and getting it there (a retried PUT).
//!
//! The ResponseURL is a presigned credential: only its scheme, host and path are ever
//! logged or put in an error message. The answer goes only where CloudFormation asked:
//! no redirect is followed (a 3xx is "not delivered"), and a URL with user
//! information is refused.

use std::time::Duration;

use aws_lambda_events::cloudformation::{
    CloudFormationCustomResourceResponse as Response,
    CloudFormationCustomResourceResponseStatus as Status,
};
use reqwest::Url;
use tokio::time::{sleep, timeout, Instant};
use tracing::{info, warn};

/// CloudFormation rejects response bodies larger than this.
pub const MAX_BODY: usize = 4096;
const TRUNCATED: &str = " [truncated]";

/// A ResponseURL that passed the host check.
#[derive(Clone, Debug)]
pub struct ResponseUrl {
    url: Url,
}

/// The URL without its query string (the presigned signature) or fragment.
pub fn redact(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                port,
                u.path()
            )
        }
        Err(_) => raw
            .split(['?', '#'])
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect(),
    }
}

fn is_loopback(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

/// Splits an allowed-hosts entry into host and optional port (`[::1]:8080` included).
fn split_entry(entry: &str) -> (&str, Option<u16>) {
    let (host, port) = match entry.strip_prefix('[') {
        Some(rest) => match rest.find(']') {
            Some(i) => (&entry[..i + 2], rest[i + 1..].strip_prefix(':')),
            None => (entry, None),
        },
        None => match entry.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (entry, None),
        },
    };
    (host, port.and_then(|p| p.parse().ok()))
}

impl ResponseUrl {
    /// Accepts `https` on an AWS host, or a host the operator allowed
    /// (`RESPONSE_URL_ALLOWED_HOSTS`); loopback entries also allow plain `http`.
    pub fn parse(raw: &str, allowed_hosts: &[String]) -> Result<ResponseUrl, String> {
        let refuse = |why: &str| Err(format!("ResponseURL {} refused: {why}", redact(raw)));
        let Ok(url) = Url::parse(raw) else {
            return refuse("not a URL");
        };
        if !url.username().is_empty() || url.password().is_some() {
            return refuse(
                "it carries user information (user@host), which CloudFormation never sends",
            );
        }
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        let port = url.port_or_known_default();
        let https = url.scheme() == "https";
        if https && (host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")) {
            return Ok(ResponseUrl { url });
        }
        let allowed = allowed_hosts.iter().any(|entry| {
            let (h, p) = split_entry(entry);
            h == host
                && p.is_none_or(|p| Some(p) == port)
                && (https || (is_loopback(h) && url.scheme() == "http"))
        });
        if allowed {
            Ok(ResponseUrl { url })
        } else {
            refuse(
                "only https on an amazonaws.com host, or a host listed in \
                RESPONSE_URL_ALLOWED_HOSTS",
            )
        }
    }

    pub fn redacted(&self) -> String {
        redact(self.url.as_str())
    }
}

/// Serializes the response within [`MAX_BODY`]: Data that does not fit turns the answer
/// into a FAILED with a clear reason; a long Reason keeps its beginning and a marker.
/// When the echoed fields alone (ids CloudFormation sent) do not fit, nothing can be
/// sent: an oversized body is never uploaded.
pub fn render(mut response: Response) -> Result<Vec<u8>, String> {
    let mut body = serde_json::to_vec(&response).unwrap_or_default();
    if body.len() > MAX_BODY && !response.data.is_empty() {
        let data_bytes = serde_json::to_vec(&response.data)
            .map(|d| d.len())
            .unwrap_or(0);
        response.status = Status::Failed;
        response.reason = Some(format!(
            "the response Data ({data_bytes} bytes) does not fit in CloudFormation's \
                {MAX_BODY}-byte response; {}",
            response
                .reason
                .take()
                .unwrap_or_else(|| "the change itself succeeded".into())
        ));
        response.data.clear();
        body = serde_json::to_vec(&response).unwrap_or_default();
    }
    if body.len() > MAX_BODY {
        if let Some(reason) = response.reason.as_mut() {
            // Escaping only makes characters longer, so cutting this many raw bytes is enough.
            let over = body.len() - MAX_BODY + TRUNCATED.len();
            let mut keep = reason.len().saturating_sub(over);
            while !reason.is_char_boundary(keep) {
                keep -= 1;
            }
            reason.truncate(keep);
            reason.push_str(TRUNCATED);
            body = serde_json::to_vec(&response).unwrap_or_default();
        }
    }
    if body.len() > MAX_BODY {
        return Err(format!(
            "the response would be {} bytes, over CloudFormation's {MAX_BODY}: the ids echoed \
                from the request (PhysicalResourceId {} bytes, LogicalResourceId {} bytes, \
                StackId {} bytes, RequestId {} bytes) leave no room; not sent",
            body.len(),
            response.physical_resource_id.len(),
            response.logical_resource_id.len(),
            response.stack_id.len(),
            response.request_id.len()
        ));
    }
    Ok(body)
}

/// PUTs `body` with an empty Content-Type, retrying network errors, 429 and 5xx with
/// jittered backoff until `respond_by`. Returns the final HTTP status.
pub async fn send(
    http: &reqwest::Client,
    url: &ResponseUrl,
    body: Vec<u8>,
    respond_by: Instant,
) -> Result<u16, String> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let left = respond_by.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "response not delivered: no time left to deliver it to {} after {} attempts",
                url.redacted(),
                attempt - 1
            ));
        }
        let put = http.put(url.url.clone()).body(body.clone()).send();
        let problem = match timeout(left.min(Duration::from_secs(10)), put).await {
            Ok(Ok(resp)) if resp.status().is_success() => {
                info!(url = %url.redacted(), status = resp.status().as_u16(), attempt, "response delivered");
                return Ok(resp.status().as_u16());
            }
            Ok(Ok(resp)) if resp.status().is_server_error() || resp.status().as_u16() == 429 => {
                format!("HTTP {}", resp.status().as_u16())
            }
            Ok(Ok(resp)) if resp.status().is_redirection() => {
                return Err(format!(
                    "response not delivered: {} answered the response PUT with a redirect (HTTP \
                        {}), which is not followed: the answer goes only where CloudFormation \
                        asked",
                    url.redacted(),
                    resp.status().as_u16()
                ))
            }
            Ok(Ok(resp)) => {
                return Err(format!(
                    "response not delivered: {} answered the response PUT with HTTP {}",
                    url.redacted(),
                    resp.status().as_u16()
                ))
            }
            // without_url: reqwest's message would otherwise carry the presigned query.
            Ok(Err(e)) => e.without_url().to_string(),
            Err(_) => "timed out".into(),
        };
        let delay = Duration::from_millis(100)
            .saturating_mul(1 << attempt.min(5))
            .min(Duration::from_secs(2))
            .mul_f64(0.5 + fastrand::f64() / 2.0);
        warn!(url = %url.redacted(), attempt, problem = %problem, delay_ms = delay.as_millis() as u64, "response PUT failed; retrying");
        if Instant::now() + delay >= respond_by {
            return Err(format!(
                "response not delivered to {}: {problem}",
                url.redacted()
            ));
        }
        sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRESIGNED: &str = "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/arn%3Aaws/stack?X-Amz-Signature=secret&X-Amz-Credential=AKIA";

    fn hosts(h: &[&str]) -> Vec<String> {
        h.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn aws_s3_https_is_accepted_and_redacted() {
        let u = ResponseUrl::parse(PRESIGNED, &[]).unwrap();
        assert!(!u.redacted().contains("secret") && !u.redacted().contains('?'));
        assert!(
            ResponseUrl::parse("https://bucket.s3.cn-north-1.amazonaws.com.cn/x?sig=1", &[])
                .is_ok()
        );
    }

    #[test]
    fn other_hosts_and_plain_http_are_refused_without_leaking_the_query() {
        for url in [
            "http://bucket.s3.amazonaws.com/x?X-Amz-Signature=secret",
            "https://evil.example.com/x?X-Amz-Signature=secret",
            "https://amazonaws.com.evil.example/x?X-Amz-Signature=secret",
            "http://127.0.0.1:4566/x?X-Amz-Signature=secret",
            "https://user:pw@bucket.s3.amazonaws.com/x?X-Amz-Signature=secret",
            "https://attacker.example@bucket.s3.amazonaws.com/x?X-Amz-Signature=secret",
        ] {
            let e = ResponseUrl::parse(url, &[]).unwrap_err();
            assert!(!e.contains("secret"), "{e}");
            assert!(e.contains("refused"), "{e}");
        }
    }

    #[test]
    fn allowed_hosts_widen_the_list_and_loopback_allows_http() {
        let allowed = hosts(&[
            "127.0.0.1:4566",
            "localhost",
            "[::1]:9000",
            "s3.internal.example",
        ]);
        assert!(
            ResponseUrl::parse("http://127.0.0.1:4566/_ministack/cfn-response/t", &allowed).is_ok()
        );
        assert!(
            ResponseUrl::parse("http://127.0.0.1:4567/x", &allowed).is_err(),
            "port must match"
        );
        assert!(
            ResponseUrl::parse("http://localhost:1234/x", &allowed).is_ok(),
            "no port: any port"
        );
        assert!(ResponseUrl::parse("http://[::1]:9000/x", &allowed).is_ok());
        assert!(ResponseUrl::parse("https://s3.internal.example/x", &allowed).is_ok());
        assert!(
            ResponseUrl::parse("http://s3.internal.example/x", &allowed).is_err(),
            "http only on loopback"
        );
    }

    fn response(reason: Option<String>, data: &[(&str, String)]) -> Response {
        let mut r = Response::default();
        r.status = Status::Success;
        r.reason = reason;
        r.physical_resource_id = "arn:aws:dynamodb:us-east-1:123456789012:table/t".into();
        r.stack_id = "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1".into();
        r.request_id = "r".into();
        r.logical_resource_id = "L".into();
        r.data = data
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        r
    }

    #[test]
    fn a_long_reason_keeps_its_beginning_and_a_marker() {
        let mut r = response(Some(format!("START{}", "é\"x".repeat(3000))), &[]);
        r.status = Status::Failed;
        let body = render(r).unwrap();
        assert!(body.len() <= MAX_BODY, "{}", body.len());
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let reason = v["Reason"].as_str().unwrap();
        assert!(reason.starts_with("START") && reason.ends_with(TRUNCATED));
    }

    #[test]
    fn data_that_does_not_fit_becomes_a_clear_failure() {
        let body = render(response(None, &[("Big", "x".repeat(5000))])).unwrap();
        assert!(body.len() <= MAX_BODY);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["Status"], "FAILED");
        assert!(v["Reason"].as_str().unwrap().contains("does not fit"));
        assert_eq!(v["Data"], serde_json::json!({}));
    }

    #[test]
    fn oversized_echoed_fields_are_cut_from_the_reason_or_refused() {
        // A long LogicalResourceId still fits once the Reason is cut.
        let mut r = response(Some("x".repeat(3000)), &[]);
        r.status = Status::Failed;
        r.logical_resource_id = "L".repeat(1500);
        let body = render(r).unwrap();
        assert!(body.len() <= MAX_BODY);
        // A physical id far over CloudFormation's 1 KB limit leaves no room: not sent.
        let mut r = response(Some("short".into()), &[]);
        r.physical_resource_id = "p".repeat(5000);
        let e = render(r).unwrap_err();
        assert!(e.contains("PhysicalResourceId 5000 bytes"), "{e}");
    }

    #[test]
    fn a_small_response_is_untouched() {
        let body = render(response(None, &[("RevisionId", "1".into())])).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["Status"], "SUCCESS");
        assert_eq!(v["Data"]["RevisionId"], "1");
    }
}
