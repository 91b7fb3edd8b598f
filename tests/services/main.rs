//! Service adapters and the retry / read-back layer against `aws-smithy-mocks`:
//! every error branch, cheaply, with call counts asserted. Errors are given as the
//! HTTP responses each service sends, so the SDK's real error parsing is exercised.

mod aps;
mod dynamodb;
mod kinesis;
#[allow(dead_code)]
#[path = "../common/peers.rs"]
mod peers;
mod ssm;
mod ssm_peer;
mod support;
#[path = "../common/wire.rs"]
mod wire;
mod xray;
