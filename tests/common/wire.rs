//! Errors as the services put them on the wire, for mocked clients.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use serde_json::json;

/// An awsJson (DynamoDB, Kinesis, SSM) error as the service sends it.
pub fn json_error(status: u16, code: &str, message: &str) -> HttpResponse {
    let body = json!({"__type": format!("com.amazonaws.service#{code}"), "message": message});
    HttpResponse::new(
        StatusCode::try_from(status).unwrap(),
        SdkBody::from(body.to_string()),
    )
}

/// A restJson1 (X-Ray, Managed Prometheus) error as the service sends it.
pub fn rest_error(status: u16, code: &str, message: &str) -> HttpResponse {
    let mut r = HttpResponse::new(
        StatusCode::try_from(status).unwrap(),
        SdkBody::from(json!({"message": message}).to_string()),
    );
    r.headers_mut().insert(
        "x-amzn-errortype",
        format!("{code}:http://internal.amazon.com/coral/"),
    );
    r.headers_mut().insert("content-type", "application/json");
    r
}
