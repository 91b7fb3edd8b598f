//! The whole handler, event text in, response PUT out: each request type on each
//! service, malformed requests, deadlines, panics and a flaky ResponseURL. A local
//! server stands in for the ResponseURL and records every PUT; mocked SDK clients
//! share an in-memory store so puts are readable and deletes take effect.

mod failure_paths;
mod fakes;
mod guardrails;
mod recorder;
#[allow(dead_code, unused_imports)]
#[path = "../services/support.rs"]
mod support;
mod trace_logging;
#[path = "../common/wire.rs"]
mod wire;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_smithy_mocks::{mock, mock_client, RuleMode};
use fakes::{Fakes, Store};
use recorder::{Recorded, Recorder};
use resource_policy_provider::{handle, response_client, App, InvocationError};
use serde_json::{json, Value};

const DDB: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/orders";
const KIN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/clicks";
const APS: &str = "arn:aws:aps:us-east-1:123456789012:workspace/ws-0123";
const SSM: &str = "arn:aws:ssm:us-east-1:123456789012:parameter/app/config";
const POLICY_V1: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"*","Resource":"*"}]}"#;
const POLICY_V2: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"111122223333"},"Action":"*","Resource":"*"}]}"#;

struct Harness {
    app: Arc<App>,
    http: reqwest::Client,
    rec: Recorder,
    fakes: Fakes,
}

async fn harness_with(
    extra: impl FnOnce(
        resource_policy_provider::services::Clients,
    ) -> resource_policy_provider::services::Clients,
) -> Harness {
    harness_configured(extra, |_| {}).await
}

/// A harness whose settings `configure` changes (the guard, the drift mode).
async fn harness_configured(
    extra: impl FnOnce(
        resource_policy_provider::services::Clients,
    ) -> resource_policy_provider::services::Clients,
    configure: impl FnOnce(&mut resource_policy_provider::settings::Settings),
) -> Harness {
    let rec = Recorder::start().await;
    let mut fakes = Fakes {
        store: Store::default(),
        rules: Vec::new(),
    };
    let clients = extra(fakes::clients(&mut fakes));
    let mut settings = support::fast_settings();
    settings.response_url_allowed_hosts = vec![format!("127.0.0.1:{}", rec.port)];
    configure(&mut settings);
    let app = Arc::new(App::new(clients, settings, "us-east-1"));
    Harness {
        app,
        http: response_client(),
        rec,
        fakes,
    }
}

async fn harness() -> Harness {
    harness_with(|c| c).await
}

fn deadline_in(d: Duration) -> u64 {
    (SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + d).as_millis() as u64
}

fn event(
    rec: &Recorder,
    path: &str,
    request_type: &str,
    props: Value,
    physical: Option<&str>,
    old: Option<Value>,
) -> Value {
    let mut e = json!({
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provider",
        "ResponseURL": rec.url(path),
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/guid",
        "RequestId": format!("req-{path}"),
        "ResourceType": "Custom::Policy",
        "LogicalResourceId": "Policy",
        "ResourceProperties": props,
    });
    if let Some(p) = physical {
        e["PhysicalResourceId"] = json!(p);
    }
    if let Some(o) = old {
        e["OldResourceProperties"] = o;
    }
    e
}

impl Harness {
    async fn invoke_raw(&self, raw: &str) -> Result<Value, InvocationError> {
        handle(
            self.app.clone(),
            &self.http,
            raw,
            deadline_in(Duration::from_secs(30)),
        )
        .await
    }

    /// Invokes and returns the one response PUT received for `path`.
    async fn respond(&self, path: &str, e: &Value) -> Recorded {
        self.invoke_raw(&e.to_string()).await.expect("answered");
        self.only_response(path)
    }

    fn only_response(&self, path: &str) -> Recorded {
        let got = self.rec.received(path);
        assert_eq!(got.len(), 1, "exactly one response for {path}: {got:?}");
        let r = got.into_iter().next().unwrap();
        assert_eq!(r.method, "PUT");
        assert_eq!(
            r.header("content-type").unwrap_or(""),
            "",
            "no Content-Type"
        );
        assert!(serde_json::to_vec(&r.body).unwrap().len() <= 4096);
        r
    }
}

fn props_for(service: &str, policy: &str) -> Value {
    match service {
        "xray" => {
            json!({"PolicyName": "tracing", "Policy": policy, "BypassPolicyLockoutCheck": "false"})
        }
        "dynamodb" => {
            json!({"ResourceArn": DDB, "Policy": policy, "Service": "dynamodb", "ConfirmRemoveSelfResourceAccess": "false", "WaitForPropagation": "true", "ServiceTimeout": "300"})
        }
        "kinesis" => json!({"ResourceArn": KIN, "Policy": policy}),
        "aps" => json!({"ResourceArn": APS, "Policy": policy}),
        "ssm" => json!({"ResourceArn": SSM, "Policy": policy}),
        _ => unreachable!(),
    }
}

/// (service, physical id, store key, attributes expected in Data)
const SERVICES: [(&str, &str, &str, &[&str]); 5] = [
    ("dynamodb", DDB, DDB, &["RevisionId", "ResourceArn"]),
    ("kinesis", KIN, KIN, &["ResourceArn"]),
    (
        "xray",
        "xray:us-east-1:policy/tracing",
        "xray/tracing",
        &["RevisionId", "PolicyName", "Region"],
    ),
    (
        "aps",
        APS,
        "ws-0123",
        &["RevisionId", "PolicyStatus", "ResourceArn"],
    ),
    (
        "ssm",
        "arn:aws:ssm:us-east-1:123456789012:parameter/app/config",
        SSM,
        &["PolicyId", "PolicyHash", "ResourceArn"],
    ),
];

#[tokio::test]
async fn create_update_delete_on_every_service() {
    for (service, physical, key, attributes) in SERVICES {
        let h = harness().await;
        let create = h
            .respond(
                &format!("{service}-create"),
                &event(
                    &h.rec,
                    &format!("{service}-create"),
                    "Create",
                    props_for(service, POLICY_V1),
                    None,
                    None,
                ),
            )
            .await;
        assert_eq!(
            create.body["Status"], "SUCCESS",
            "{service}: {}",
            create.body
        );
        assert_eq!(create.body["PhysicalResourceId"], physical);
        assert_eq!(create.body["LogicalResourceId"], "Policy");
        assert_eq!(create.body["RequestId"], format!("req-{service}-create"));
        assert_eq!(create.body["Data"]["Service"], service);
        for a in attributes {
            assert!(
                create.body["Data"][a].is_string(),
                "{service} Data lacks {a}: {}",
                create.body
            );
        }
        assert!(h.fakes.store.holds(key).is_some());

        let path = format!("{service}-update");
        let update = h
            .respond(
                &path,
                &event(
                    &h.rec,
                    &path,
                    "Update",
                    props_for(service, POLICY_V2),
                    Some(physical),
                    Some(props_for(service, POLICY_V1)),
                ),
            )
            .await;
        assert_eq!(
            update.body["Status"], "SUCCESS",
            "{service}: {}",
            update.body
        );
        assert_eq!(
            update.body["PhysicalResourceId"], physical,
            "{service}: same target keeps its id"
        );
        assert!(
            h.fakes.store.holds(key).unwrap().contains("Deny"),
            "{service}: the new policy is in place"
        );

        let path = format!("{service}-delete");
        let delete = h
            .respond(
                &path,
                &event(
                    &h.rec,
                    &path,
                    "Delete",
                    props_for(service, POLICY_V2),
                    Some(physical),
                    None,
                ),
            )
            .await;
        assert_eq!(
            delete.body["Status"], "SUCCESS",
            "{service}: {}",
            delete.body
        );
        assert_eq!(delete.body["PhysicalResourceId"], physical);
        assert_eq!(
            h.fakes.store.holds(key),
            None,
            "{service}: the policy is gone"
        );

        // Delivered again, a Delete finds nothing to remove and still succeeds.
        let path = format!("{service}-delete-again");
        let again = h
            .respond(
                &path,
                &event(
                    &h.rec,
                    &path,
                    "Delete",
                    props_for(service, POLICY_V2),
                    Some(physical),
                    None,
                ),
            )
            .await;
        assert_eq!(again.body["Status"], "SUCCESS", "{service}: {}", again.body);
    }
}

#[tokio::test]
async fn an_update_that_moves_to_another_table_returns_a_new_id() {
    let h = harness().await;
    let other = "arn:aws:dynamodb:us-east-1:123456789012:table/invoices";
    let path = "move";
    let r = h
        .respond(
            path,
            &event(
                &h.rec,
                path,
                "Update",
                json!({"ResourceArn": other, "Policy": POLICY_V1}),
                Some(DDB),
                Some(json!({"ResourceArn": DDB, "Policy": POLICY_V1})),
            ),
        )
        .await;
    assert_eq!(r.body["Status"], "SUCCESS");
    assert_eq!(r.body["PhysicalResourceId"], other);
    assert!(h.fakes.store.holds(other).is_some());
}

#[tokio::test]
async fn a_failed_create_answers_with_a_marker_whose_delete_touches_nothing() {
    let h = harness().await;
    let r = h
        .respond(
            "bad-create",
            &event(
                &h.rec,
                "bad-create",
                "Create",
                json!({"ResourceArn": DDB}),
                None,
                None,
            ),
        )
        .await;
    assert_eq!(r.body["Status"], "FAILED");
    let marker = r.body["PhysicalResourceId"].as_str().unwrap().to_string();
    let before = h.fakes.calls();
    let d = h
        .respond(
            "marker-delete",
            &event(
                &h.rec,
                "marker-delete",
                "Delete",
                json!({"ResourceArn": DDB}),
                Some(&marker),
                None,
            ),
        )
        .await;
    assert_eq!(d.body["Status"], "SUCCESS");
    assert_eq!(d.body["PhysicalResourceId"], marker.as_str());
    assert_eq!(h.fakes.calls(), before, "no AWS call for a marker id");
}

#[tokio::test]
async fn malformed_requests_each_get_one_failed_answer_naming_the_problem() {
    let h = harness().await;
    let big = format!(
        r#"{{"Version":"2012-10-17","Sid":"{}"}}"#,
        "x".repeat(30 * 1024)
    );
    let cases: Vec<(&str, Value, &str)> = vec![
        ("Create", json!({"ResourceArn": DDB}), "Policy is required"),
        (
            "Create",
            json!({"Policy": POLICY_V1}),
            "ResourceArn is required",
        ),
        (
            "Create",
            json!({"ResourceArn": "arn:aws:dynamodb:us-east-1:123456789012:table/t/index/i", "Policy": POLICY_V1}),
            "index",
        ),
        (
            "Create",
            json!({"ResourceArn": "arn:aws:s3:::bucket", "Policy": POLICY_V1}),
            "\"s3\"",
        ),
        (
            "Create",
            json!({"ResourceArn": "garbage", "Policy": POLICY_V1}),
            "not an ARN",
        ),
        (
            "Create",
            json!({"ResourceArn": DDB, "Service": "kinesis", "Policy": POLICY_V1}),
            "disagrees",
        ),
        (
            "Create",
            json!({"ResourceArn": DDB, "Policy": "[1,2,3]"}),
            "JSON object",
        ),
        (
            "Create",
            json!({"ResourceArn": DDB, "Policy": "{not json"}),
            "not valid JSON",
        ),
        (
            "Create",
            json!({"ResourceArn": DDB, "Policy": big}),
            "20480",
        ),
        (
            "Create",
            json!({"PolicyName": "p", "Policy": format!(r#"{{"Sid":"{}"}}"#, "y".repeat(6000))}),
            "5120",
        ),
        (
            "Create",
            json!({"ResourceArn": DDB, "Policy": POLICY_V1, "WaitForPropagation": "maybe"}),
            "WaitForPropagation",
        ),
        (
            "Create",
            json!({"ResourceArn": DDB, "Policy": POLICY_V1, "ConfirmRemoveSelfResourceAccess": 3}),
            "ConfirmRemoveSelfResourceAccess",
        ),
        (
            "Create",
            json!({"ResourceArn": DDB, "Policy": POLICY_V1, "Colour": "red"}),
            "Colour",
        ),
        (
            "Create",
            json!({"ResourceArn": KIN, "Policy": POLICY_V1, "ConfirmRemoveSelfResourceAccess": "true"}),
            "DynamoDB only",
        ),
        (
            "Create",
            json!({"ResourceArn": DDB, "Policy": POLICY_V1, "Region": "eu-west-1"}),
            "Region",
        ),
        (
            "Create",
            json!({"PolicyName": "no spaces allowed", "Policy": POLICY_V1}),
            "PolicyName",
        ),
        (
            "Create",
            json!({"ResourceArn": DDB, "Policy": POLICY_V1, "ServiceTimeout": "9999"}),
            "ServiceTimeout",
        ),
        (
            "Create",
            json!("a string, not an object"),
            "must be an object",
        ),
        ("Create", Value::Null, "ResourceProperties are missing"),
        (
            "Upsert",
            json!({"ResourceArn": DDB, "Policy": POLICY_V1}),
            "RequestType \"Upsert\"",
        ),
        (
            "",
            json!({"ResourceArn": DDB, "Policy": POLICY_V1}),
            "RequestType",
        ),
        (
            "Update",
            json!({"ResourceArn": DDB, "Policy": 42}),
            "Policy",
        ),
        (
            "Update",
            json!({"ResourceArn": DDB, "Policy": POLICY_V1}),
            "OldResourceProperties",
        ),
    ];
    for (i, (request_type, props, needle)) in cases.iter().enumerate() {
        let path = format!("bad-{i}");
        let mut e = event(&h.rec, &path, request_type, props.clone(), Some(DDB), None);
        if request_type.is_empty() {
            e.as_object_mut().unwrap().remove("RequestType");
        }
        if *needle == "Policy" {
            e["OldResourceProperties"] = json!({"ResourceArn": DDB, "Policy": POLICY_V1});
        }
        if *request_type == "Create" {
            e.as_object_mut().unwrap().remove("PhysicalResourceId");
        }
        let r = h.respond(&path, &e).await;
        assert_eq!(r.body["Status"], "FAILED", "case {i}: {}", r.body);
        let reason = r.body["Reason"].as_str().unwrap();
        assert!(
            reason.contains(needle),
            "case {i}: {reason:?} should name {needle:?}"
        );
        assert!(!r.body["PhysicalResourceId"].as_str().unwrap().is_empty());
    }

    // A lone surrogate escape: the strict decoder rejects it, the answer still goes out.
    let raw = event(
        &h.rec,
        "surrogate",
        "Create",
        json!({"ResourceArn": DDB, "Policy": "SURROGATE"}),
        None,
        None,
    )
    .to_string()
    .replace("SURROGATE", "\\ud800");
    h.invoke_raw(&raw).await.unwrap();
    let r = h.only_response("surrogate");
    assert_eq!(r.body["Status"], "FAILED");
    assert!(r.body["Reason"].as_str().unwrap().contains("surrogate"));

    // Nothing to answer: an error result naming what is missing, and no PUT anywhere.
    let before = h.rec.received("").len();
    assert!(h
        .invoke_raw("{}")
        .await
        .unwrap_err()
        .to_string()
        .contains("empty event"));
    let mut no_url = event(
        &h.rec,
        "x",
        "Create",
        props_for("dynamodb", POLICY_V1),
        None,
        None,
    );
    no_url.as_object_mut().unwrap().remove("ResponseURL");
    assert!(h
        .invoke_raw(&no_url.to_string())
        .await
        .unwrap_err()
        .to_string()
        .contains("ResponseURL"));
    let mut foreign = event(
        &h.rec,
        "x",
        "Create",
        props_for("dynamodb", POLICY_V1),
        None,
        None,
    );
    foreign["ResponseURL"] = json!("https://attacker.example/x?X-Amz-Signature=secret");
    let err = h
        .invoke_raw(&foreign.to_string())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("refused") && !err.contains("secret"), "{err}");
    assert_eq!(h.rec.received("").len(), before);

    // And the same process keeps serving.
    let ok = h
        .respond(
            "after",
            &event(
                &h.rec,
                "after",
                "Create",
                props_for("dynamodb", POLICY_V1),
                None,
                None,
            ),
        )
        .await;
    assert_eq!(ok.body["Status"], "SUCCESS");
}

#[tokio::test]
async fn work_that_outlives_the_deadline_is_answered_failed_before_it() {
    use aws_sdk_dynamodb::operation::{
        get_resource_policy::GetResourcePolicyOutput, put_resource_policy::PutResourcePolicyOutput,
    };
    let put = mock!(aws_sdk_dynamodb::Client::put_resource_policy).then_output(|| {
        PutResourcePolicyOutput::builder()
            .revision_id("new")
            .build()
    });
    let get = mock!(aws_sdk_dynamodb::Client::get_resource_policy).then_output(|| {
        GetResourcePolicyOutput::builder()
            .policy(POLICY_V2)
            .revision_id("old")
            .build()
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put, &get]);
    let h = harness_with(|c| c.with_dynamodb("us-west-2", client)).await;
    let arn = "arn:aws:dynamodb:us-west-2:123456789012:table/slow";
    let e = event(
        &h.rec,
        "slow",
        "Create",
        // The table holds another policy that reads never stop showing.
        json!({"ResourceArn": arn, "Policy": POLICY_V1, "TakeOver": "true"}),
        None,
        None,
    );
    let deadline = std::time::Instant::now() + Duration::from_millis(2500);
    handle(
        h.app.clone(),
        &h.http,
        &e.to_string(),
        deadline_in(Duration::from_millis(2500)),
    )
    .await
    .unwrap();
    assert!(
        std::time::Instant::now() < deadline,
        "answered before the deadline"
    );
    let r = h.only_response("slow");
    assert_eq!(r.body["Status"], "FAILED");
    let reason = r.body["Reason"].as_str().unwrap();
    assert!(
        reason.contains("not visible") && reason.contains("revision old"),
        "{reason}"
    );
    assert_eq!(
        r.body["PhysicalResourceId"], arn,
        "the put landed, so the rollback Delete must clean it up"
    );
}

#[tokio::test]
async fn a_panic_while_handling_is_answered_failed() {
    let put = mock!(aws_sdk_dynamodb::Client::put_resource_policy).then_compute_output(
        |_| -> aws_sdk_dynamodb::operation::put_resource_policy::PutResourcePolicyOutput {
            panic!("adapter exploded")
        },
    );
    let get = failure_paths::no_policy();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put, &get]);
    let h = harness_with(|c| c.with_dynamodb("eu-west-1", client)).await;
    let arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/t";
    let r = h
        .respond(
            "panic",
            &event(
                &h.rec,
                "panic",
                "Create",
                json!({"ResourceArn": arn, "Policy": POLICY_V1}),
                None,
                None,
            ),
        )
        .await;
    assert_eq!(r.body["Status"], "FAILED");
    assert!(r.body["Reason"]
        .as_str()
        .unwrap()
        .contains("adapter exploded"));
    let ok = h
        .respond(
            "after-panic",
            &event(
                &h.rec,
                "after-panic",
                "Create",
                props_for("kinesis", POLICY_V1),
                None,
                None,
            ),
        )
        .await;
    assert_eq!(ok.body["Status"], "SUCCESS");
}

#[tokio::test]
async fn the_response_put_is_retried_on_server_errors() {
    let h = harness().await;
    h.rec.answer_with(&[503, 500]);
    let e = event(
        &h.rec,
        "flaky",
        "Create",
        props_for("kinesis", POLICY_V1),
        None,
        None,
    );
    let out = h.invoke_raw(&e.to_string()).await.unwrap();
    assert_eq!(out["ResponseHttpStatus"], 200);
    let got = h.rec.received("flaky");
    assert_eq!(got.len(), 3, "two failures and the delivery");
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "the same answer each time"
    );
}

#[tokio::test]
async fn a_client_error_on_the_response_put_is_reported_not_retried() {
    let h = harness().await;
    h.rec.answer_with(&[403]);
    let e = event(
        &h.rec,
        "expired",
        "Create",
        props_for("kinesis", POLICY_V1),
        None,
        None,
    );
    let err = h.invoke_raw(&e.to_string()).await.unwrap_err().to_string();
    assert!(err.contains("403") && !err.contains("secret"), "{err}");
    assert_eq!(h.rec.received("expired").len(), 1);
}

#[tokio::test]
async fn eventbridge_apply_requests_put_and_delete_and_others_are_refused() {
    let h = harness().await;
    let put = json!({"version": "0", "id": "ev-1", "detail-type": "PutResourcePolicy", "source": "platform.policies",
        "account": "123456789012", "detail": {"ResourceArn": KIN, "Policy": POLICY_V1}});
    let out = h.invoke_raw(&put.to_string()).await.unwrap();
    assert_eq!(out["Status"], "APPLIED");
    assert_eq!(out["Target"], KIN);
    assert!(h.fakes.store.holds(KIN).is_some());

    let del = json!({"id": "ev-2", "detail-type": "DeleteResourcePolicy", "source": "platform.policies", "account": "123456789012", "detail": {"ResourceArn": KIN}});
    assert_eq!(
        h.invoke_raw(&del.to_string()).await.unwrap()["Status"],
        "DELETED"
    );
    assert_eq!(h.fakes.store.holds(KIN), None);

    let bad = json!({"id": "ev-3", "detail-type": "PutResourcePolicy", "source": "platform.policies", "account": "123456789012", "detail": {"ResourceArn": KIN}});
    assert!(h
        .invoke_raw(&bad.to_string())
        .await
        .unwrap_err()
        .to_string()
        .contains("Policy is required"));

    let trail = json!({"id": "ev-4", "detail-type": "AWS API Call via CloudTrail", "source": "aws.dynamodb", "detail": {"eventName": "PutResourcePolicy"}});
    assert_eq!(
        h.invoke_raw(&trail.to_string()).await.unwrap()["Status"],
        "IGNORED"
    );

    let other =
        json!({"id": "ev-5", "detail-type": "Object Created", "source": "aws.s3", "detail": {}});
    let err = h
        .invoke_raw(&other.to_string())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Object Created") && err.contains("aws.s3"),
        "{err}"
    );
    assert!(
        h.rec.received("").is_empty(),
        "EventBridge never answers a ResponseURL"
    );
}

#[tokio::test]
async fn every_sample_event_is_valid_and_succeeds() {
    let h = harness().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let mut seen = 0;
    // Every CloudFormation sample, in order per resource: whole policies on each
    // service, then a resource owning statements in a shared policy.
    let mut cfn: Vec<String> = ["dynamodb", "kinesis", "xray", "aps", "ssm"]
        .iter()
        .map(|name| format!("cfn-{name}"))
        .collect();
    cfn.push("cfn-statements-dynamodb".into());
    for stem in cfn {
        for kind in ["create", "update", "delete"] {
            let file = dir.join(format!("{stem}-{kind}.json"));
            let mut e: Value =
                serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            let path = format!("sample-{stem}-{kind}");
            e["ResponseURL"] = json!(h.rec.url(&path));
            let r = h.respond(&path, &e).await;
            assert_eq!(
                r.body["Status"],
                "SUCCESS",
                "{}: {}",
                file.display(),
                r.body
            );
            seen += 1;
        }
    }
    let file = dir.join("eventbridge-statements-put-ssm.json");
    let out = h.invoke_raw(&std::fs::read_to_string(&file).unwrap()).await;
    assert_eq!(
        out.unwrap()["Data"]["Sids"],
        "TeamARead",
        "{}",
        file.display()
    );
    seen += 1;
    for name in ["dynamodb", "kinesis", "xray", "aps", "ssm"] {
        let file = dir.join(format!("eventbridge-put-{name}.json"));
        let out = h.invoke_raw(&std::fs::read_to_string(&file).unwrap()).await;
        assert_eq!(out.unwrap()["Status"], "APPLIED", "{}", file.display());
        seen += 1;
    }
    assert_eq!(seen, 24);
}
