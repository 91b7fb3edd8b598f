//! Drift repair, the reconcile and shared policies against real peers: the ledger in
//! moto's DynamoDB, the targets on moto and the project's test server, the whole
//! handler from event text to answer. CloudTrail-shaped events are built as
//! EventBridge delivers them.

#[path = "../common/peers.rs"]
mod peers;
#[allow(dead_code)]
#[path = "../handler/recorder.rs"]
mod recorder;
mod sequences;
mod shared;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use peers::Peer;
use recorder::Recorder;
use resource_policy_provider::ledger::{Holding, Ledger, NewRecord, View};
use resource_policy_provider::services::Clients;
use resource_policy_provider::settings::Settings;
use resource_policy_provider::{handle, sdk_loader, App, InvocationError};
use serde_json::{json, Value};

const ACCOUNT: &str = "123456789012";
const ROLE: &str = "arn:aws:iam::123456789012:role/provider-role";
const TABLE: &str = "provider-ledger";

fn doc(actions: &[&str]) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Sid": "Traces", "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"}, "Action": actions, "Resource": "*"}]})
}

fn ssm_doc(arn: &str, action: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Sid": "Share", "Effect": "Allow",
        "Principal": {"AWS": "111122223333"}, "Action": action, "Resource": arn}]})
}

struct World {
    _moto: Peer,
    /// microburst in front of moto, when the world injects faults.
    proxy: Option<Peer>,
    server: Peer,
    app: Arc<App>,
    http: reqwest::Client,
    rec: Recorder,
    /// Payloads of the function's asynchronous invocations of itself.
    invoked: Arc<Mutex<Vec<Value>>>,
    _invoke_rule: Rule,
}

fn settings(rec: &Recorder) -> Settings {
    Settings {
        retry_base: Duration::from_millis(5),
        retry_max_delay: Duration::from_millis(20),
        not_found_grace: Duration::from_millis(500),
        poll_initial: Duration::from_millis(5),
        poll_max: Duration::from_millis(50),
        response_reserve: Duration::from_secs(2),
        response_url_allowed_hosts: vec![format!("127.0.0.1:{}", rec.port)],
        ledger_table: Some(TABLE.into()),
        function_role_arn: Some(ROLE.into()),
        apply_allowed_accounts: Some(vec![ACCOUNT.into()]),
        function_name: Some("provider".into()),
        ..Settings::default()
    }
}

async fn world() -> World {
    world_with(None).await
}

/// A world whose DynamoDB and Kinesis calls go through microburst with `rules`.
async fn world_with(faults: Option<Value>) -> World {
    let moto = peers::moto().await;
    let proxy = match faults {
        Some(rules) => Some(peers::microburst(&moto.url, rules).await),
        None => None,
    };
    let aws_url = proxy.as_ref().map_or(moto.url.clone(), |p| p.url.clone());
    let server = peers::policy_server();
    let rec = Recorder::start().await;
    let settings = settings(&rec);
    let config = |url: String| {
        sdk_loader(&settings)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(Credentials::for_tests())
            .endpoint_url(url)
            .load()
    };
    let ddb = aws_sdk_dynamodb::Client::new(&config(aws_url.clone()).await);
    create_table(&ddb, TABLE, "target").await;
    let invoked: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = invoked.clone();
    let invoke_rule = mock!(aws_sdk_lambda::Client::invoke).then_compute_output(move |r| {
        let payload = r.payload().map(|b| b.as_ref().to_vec()).unwrap_or_default();
        sink.lock()
            .unwrap()
            .push(serde_json::from_slice(&payload).unwrap());
        aws_sdk_lambda::operation::invoke::InvokeOutput::builder()
            .status_code(202)
            .build()
    });
    let lambda = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, [&invoke_rule]);
    let kinesis = aws_sdk_kinesis::Client::new(&config(aws_url).await);
    // Whether an owner's stack resource still exists: yes, but for deleted stacks.
    let cloudformation = peers::stacks();
    let clients = Clients::new(config(server.url.clone()).await)
        .with_cloudformation("us-east-1", cloudformation)
        .with_kinesis("us-east-1", kinesis)
        .with_dynamodb("us-east-1", ddb)
        .with_lambda("us-east-1", lambda);
    let app = Arc::new(App::new(clients, settings, "us-east-1"));
    World {
        _moto: moto,
        proxy,
        server,
        app,
        http: resource_policy_provider::response_client(),
        rec,
        invoked,
        _invoke_rule: invoke_rule,
    }
}

/// An on-demand DynamoDB table with a string partition key `key`.
async fn create_table(ddb: &aws_sdk_dynamodb::Client, name: &str, key: &str) {
    ddb.create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(key)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(key)
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap_or_else(|e| panic!("table {name} is created in moto: {e:?}"));
}

fn deadline_in(d: Duration) -> u64 {
    (SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + d).as_millis() as u64
}

impl World {
    async fn invoke(&self, event: &Value, within: Duration) -> Result<Value, InvocationError> {
        handle(
            self.app.clone(),
            &self.http,
            &event.to_string(),
            deadline_in(within),
        )
        .await
    }

    /// A custom resource request, answered SUCCESS; returns the physical id.
    async fn cfn(&self, path: &str, kind: &str, props: Value, physical: Option<&str>) -> String {
        let mut e = json!({
            "RequestType": kind,
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provider",
            "ResponseURL": self.rec.url(path),
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/consumer/guid",
            "RequestId": format!("req-{path}"),
            "ResourceType": "Custom::ResourcePolicy",
            "LogicalResourceId": "TracingPolicy",
            "ResourceProperties": props,
        });
        if let Some(p) = physical {
            e["PhysicalResourceId"] = json!(p);
            e["OldResourceProperties"] = props.clone();
        }
        self.invoke(&e, Duration::from_secs(30)).await.unwrap();
        let got = self.rec.received(path);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].body["Status"], "SUCCESS", "{}", got[0].body);
        got[0].body["PhysicalResourceId"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn ledger(&self) -> &Ledger {
        self.app.ledger()
    }

    fn xray(&self) -> aws_sdk_xray::Client {
        self.app.clients.xray("us-east-1")
    }

    async fn xray_document(&self, name: &str) -> Option<Value> {
        let out = self.xray().list_resource_policies().send().await.unwrap();
        out.resource_policies()
            .iter()
            .find(|p| p.policy_name() == Some(name))
            .map(|p| serde_json::from_str(p.policy_document().unwrap()).unwrap())
    }
}

/// A CloudTrail event as EventBridge delivers it.
fn trail(source: &str, name: &str, params: Value, caller: &str) -> Value {
    json!({
        "version": "0",
        "id": format!("trail-{}", SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()),
        "detail-type": "AWS API Call via CloudTrail",
        "source": format!("aws.{}", source.split('.').next().unwrap()),
        "account": ACCOUNT,
        "time": "2026-11-23T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventVersion": "1.09",
            "userIdentity": {"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"type": "Role", "arn": caller}}},
            "eventSource": source,
            "eventName": name,
            "awsRegion": "us-east-1",
            "requestParameters": params,
            "responseElements": null,
            "readOnly": false,
            "eventType": "AwsApiCall",
        }
    })
}

fn xray_trail(name: &str) -> Value {
    trail(
        "xray.amazonaws.com",
        "PutResourcePolicy",
        json!({"policyName": name, "policyDocument": "HIDDEN"}),
        "arn:aws:iam::123456789012:role/someone-else",
    )
}

#[tokio::test]
async fn the_ledger_follows_create_update_delete_and_drift_is_repaired_to_the_latest() {
    let w = world().await;
    let v1 = doc(&["xray:PutTraceSegments"]);
    let v2 = doc(&["xray:PutTraceSegments", "xray:GetSamplingRules"]);
    let props = |d: &Value| json!({"PolicyName": "tracing", "Policy": d});
    let id = w.cfn("create", "Create", props(&v1), None).await;
    assert_eq!(id, "xray:us-east-1:policy/tracing");

    let row = w
        .ledger()
        .get(&id)
        .await
        .unwrap()
        .expect("a ledger row after Create");
    let owner = owner_of(&row);
    assert_eq!(owner.holding, Holding::Policy(v1.clone()));
    assert!(owner.present && owner.settled);
    let created_version = row.change_version;

    // Out of band: the policy is deleted; its CloudTrail event puts it back.
    w.xray()
        .delete_resource_policy()
        .policy_name("tracing")
        .send()
        .await
        .unwrap();
    let out = w
        .invoke(&xray_trail("tracing"), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(out["Status"], "REPAIRED", "{out}");
    assert_eq!(w.xray_document("tracing").await, Some(v1.clone()));

    // Out of band: a hand-written policy replaces it; repaired to the desired document.
    let hand = doc(&["xray:*"]);
    w.xray()
        .put_resource_policy()
        .policy_name("tracing")
        .policy_document(hand.to_string())
        .send()
        .await
        .unwrap();
    let out = w
        .invoke(&xray_trail("tracing"), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(out["Status"], "REPAIRED");
    assert_eq!(w.xray_document("tracing").await, Some(v1.clone()));

    // In sync: one read, no write.
    let puts = w.server.calls("xray", "PutResourcePolicy").await;
    let out = w
        .invoke(&xray_trail("tracing"), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(out["Status"], "IN_SYNC");
    assert_eq!(w.server.calls("xray", "PutResourcePolicy").await, puts);

    // Update: the ledger takes the new document, and a repair restores that one.
    w.cfn("update", "Update", props(&v2), Some(&id)).await;
    let row = w.ledger().get(&id).await.unwrap().unwrap();
    assert_eq!(owner_of(&row).holding, Holding::Policy(v2.clone()));
    assert!(row.change_version > created_version);
    w.xray()
        .put_resource_policy()
        .policy_name("tracing")
        .policy_document(hand.to_string())
        .send()
        .await
        .unwrap();
    let out = w
        .invoke(&xray_trail("tracing"), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(out["Status"], "REPAIRED");
    assert_eq!(w.xray_document("tracing").await, Some(v2.clone()));

    // Delete: the owner is recorded gone, and what is written there by hand afterwards
    // is not its to remove or restore.
    w.cfn("delete", "Delete", props(&v2), Some(&id)).await;
    let row = w.ledger().get(&id).await.unwrap().unwrap();
    assert!(!owner_of(&row).present && owner_of(&row).settled);
    assert_eq!(w.xray_document("tracing").await, None);
    w.xray()
        .put_resource_policy()
        .policy_name("tracing")
        .policy_document(hand.to_string())
        .send()
        .await
        .unwrap();
    let out = w
        .invoke(&xray_trail("tracing"), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(out["Status"], "IN_SYNC", "{out}");
    assert_eq!(w.xray_document("tracing").await, Some(hand));
}

const STACK_OWNER: &str =
    "cfn:arn:aws:cloudformation:us-east-1:123456789012:stack/consumer/guid/TracingPolicy";

/// The record of the stack resource the CloudFormation events here come from.
fn owner_of(row: &View) -> resource_policy_provider::ledger::Record {
    row.owners
        .get(STACK_OWNER)
        .unwrap_or_else(|| panic!("no record for {STACK_OWNER}: {:?}", row.owners.keys()))
        .clone()
}

#[tokio::test]
async fn failed_calls_own_calls_and_unmanaged_targets_write_nothing() {
    let w = world().await;
    let v1 = doc(&["xray:PutTraceSegments"]);
    w.cfn(
        "c",
        "Create",
        json!({"PolicyName": "mine", "Policy": v1}),
        None,
    )
    .await;
    let hand = doc(&["xray:*"]);
    w.xray()
        .put_resource_policy()
        .policy_name("mine")
        .policy_document(hand.to_string())
        .send()
        .await
        .unwrap();
    w.xray()
        .put_resource_policy()
        .policy_name("theirs")
        .policy_document(hand.to_string())
        .send()
        .await
        .unwrap();
    let puts = w.server.calls("xray", "PutResourcePolicy").await;

    let mut failed = xray_trail("mine");
    failed["detail"]["errorCode"] = json!("AccessDenied");
    assert_eq!(
        w.invoke(&failed, Duration::from_secs(30)).await.unwrap()["Status"],
        "IGNORED"
    );
    let own = trail(
        "xray.amazonaws.com",
        "PutResourcePolicy",
        json!({"policyName": "mine"}),
        ROLE,
    );
    assert_eq!(
        w.invoke(&own, Duration::from_secs(30)).await.unwrap()["Status"],
        "IGNORED"
    );
    let unmanaged = xray_trail("theirs");
    assert_eq!(
        w.invoke(&unmanaged, Duration::from_secs(30)).await.unwrap()["Status"],
        "UNMANAGED"
    );
    assert_eq!(
        w.server.calls("xray", "PutResourcePolicy").await,
        puts,
        "nothing written"
    );
    assert_eq!(w.xray_document("mine").await, Some(hand), "left as it was");

    // Malformed CloudTrail events: clear errors or logged ignores, never a panic.
    let no_detail = json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.xray"});
    let e = w
        .invoke(&no_detail, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "InvalidRequest");
    assert!(e.to_string().contains("detail"), "{e}");
    let no_id = trail(
        "xray.amazonaws.com",
        "PutResourcePolicy",
        json!({"policyDocument": "{}"}),
        "x",
    );
    let e = w.invoke(&no_id, Duration::from_secs(5)).await.unwrap_err();
    assert!(e.to_string().contains("names no target"), "{e}");
    let other = trail(
        "s3.amazonaws.com",
        "PutBucketPolicy",
        json!({"bucketName": "b"}),
        "x",
    );
    assert_eq!(
        w.invoke(&other, Duration::from_secs(5)).await.unwrap()["Status"],
        "IGNORED"
    );
}

fn apply(kind: &str, account: &str, detail: Value) -> Value {
    json!({"version": "0", "id": format!("apply-{kind}-{}", SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()),
        "detail-type": kind, "source": "platform.policies", "account": account,
        "region": "us-east-1", "resources": [], "detail": detail})
}

#[tokio::test]
async fn ssm_apply_requests_replace_their_own_policy_and_delete_exactly_it() {
    let w = world().await;
    let arn = "arn:aws:ssm:us-east-1:123456789012:parameter/app/config";
    w.server
        .control(
            reqwest::Method::POST,
            "ssm-resources",
            Some(json!({"arn": arn})),
        )
        .await;
    // A policy someone else wrote stays.
    let theirs = ssm_doc(arn, "ssm:GetParameters");
    w.app
        .clients
        .ssm("us-east-1")
        .put_resource_policy()
        .resource_arn(arn)
        .policy(theirs.to_string())
        .send()
        .await
        .unwrap();

    for action in ["ssm:GetParameter", "ssm:GetParameterHistory"] {
        let e = apply(
            "PutResourcePolicy",
            ACCOUNT,
            json!({"ResourceArn": arn, "Policy": ssm_doc(arn, action)}),
        );
        assert_eq!(
            w.invoke(&e, Duration::from_secs(30)).await.unwrap()["Status"],
            "APPLIED"
        );
    }
    let policies = w.server.state().await["ssm"]["policies"][arn]
        .as_array()
        .cloned()
        .unwrap();
    assert_eq!(
        policies.len(),
        2,
        "theirs and exactly one of ours: {policies:?}"
    );

    let e = apply("DeleteResourcePolicy", ACCOUNT, json!({"ResourceArn": arn}));
    assert_eq!(
        w.invoke(&e, Duration::from_secs(30)).await.unwrap()["Status"],
        "DELETED"
    );
    let policies = w.server.state().await["ssm"]["policies"][arn]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(policies.len(), 1, "{policies:?}");
    assert_eq!(
        serde_json::from_str::<Value>(policies[0]["Policy"].as_str().unwrap()).unwrap(),
        theirs
    );
    let row = w.ledger().get(arn).await.unwrap().unwrap();
    let sender = &row.owners[&format!("events:{ACCOUNT}/platform.policies")];
    assert!(
        !sender.present && sender.settled,
        "the sender is recorded gone"
    );

    // From an account that is not allowed: refused before any call.
    let calls = w.server.calls("ssm", "PutResourcePolicy").await;
    let e = apply(
        "PutResourcePolicy",
        "999999999999",
        json!({"ResourceArn": arn, "Policy": ssm_doc(arn, "ssm:*")}),
    );
    let err = w.invoke(&e, Duration::from_secs(30)).await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidRequest");
    assert!(err.to_string().contains("999999999999"), "{err}");
    assert_eq!(w.server.calls("ssm", "PutResourcePolicy").await, calls);
}

/// `n` SSM parameters on the test server, each with a policy, the first `drifted` of
/// them holding another document than the ledger's.
async fn managed_parameters(w: &World, n: usize, drifted: usize) {
    let ssm = w.app.clients.ssm("us-east-1");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let arn = format!("arn:aws:ssm:us-east-1:123456789012:parameter/fleet/p{i:04}");
        let control = w.server.url.clone();
        let ssm = ssm.clone();
        let app = w.app.clone();
        tasks.spawn(async move {
            resource_policy_provider::response_client()
                .post(format!("{control}/_fake/ssm-resources"))
                .body(json!({"arn": arn}).to_string())
                .send()
                .await
                .unwrap();
            let desired = ssm_doc(&arn, "ssm:GetParameter");
            let live = if i < drifted {
                ssm_doc(&arn, "ssm:*")
            } else {
                desired.clone()
            };
            let out = ssm
                .put_resource_policy()
                .resource_arn(&arn)
                .policy(live.to_string())
                .send()
                .await
                .unwrap();
            let owner =
                format!("cfn:arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/fleet/guid/P{i}");
            let record = NewRecord {
                holding: Holding::Policy(desired),
                present: true,
                policy_id: out.policy_id().map(str::to_string),
                prior: None,
                adopted: false,
                options: Value::Null,
            };
            let ledger = app.ledger();
            let r = ledger
                .record(&arn, &json!({"ResourceArn": arn}), "ssm", &owner, &record)
                .await
                .unwrap()
                .unwrap();
            ledger.settle(&arn, &owner, r.version, None).await.unwrap();
        });
        if tasks.len() >= 16 {
            tasks.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
}

fn scheduled(id: &str) -> Value {
    json!({"version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events",
        "account": ACCOUNT, "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/reconcile"], "detail": {}})
}

#[tokio::test]
async fn the_reconcile_repairs_exactly_the_drifted_and_continues_when_time_runs_out() {
    let w = world().await;
    managed_parameters(&w, 1000, 50).await;
    let puts_before = w.server.calls("ssm", "PutResourcePolicy").await;

    // A budget for about one page: the walk records its cursor and continues.
    let first = w
        .invoke(&scheduled("walk-1"), Duration::from_secs(11))
        .await
        .unwrap();
    assert_eq!(first["Status"], "CONTINUED", "{first}");
    let continuation = w
        .invoked
        .lock()
        .unwrap()
        .pop()
        .expect("the function invoked itself");
    assert_eq!(continuation["detail"]["WalkId"], "walk-1");

    // A second walk while this one holds the lease is refused.
    let second = w
        .invoke(&scheduled("walk-2"), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(second["Status"], "REFUSED", "{second}");

    // The continuation (and any further ones) finish the walk.
    let mut next = continuation;
    let done = loop {
        let out = w.invoke(&next, Duration::from_secs(120)).await.unwrap();
        if out["Status"] == "DONE" {
            break out;
        }
        assert_eq!(out["Status"], "CONTINUED", "{out}");
        next = w.invoked.lock().unwrap().pop().unwrap();
    };
    assert_eq!(
        done["Totals"],
        json!({"Checked": 1000, "InDrift": 50, "Repaired": 50, "Failed": 0, "Detected": 0,
            "LoopsStopped": 0}),
        "{done}"
    );
    assert_eq!(
        w.server.calls("ssm", "PutResourcePolicy").await - puts_before,
        50,
        "writes only for the drifted targets"
    );
    // Every drifted parameter holds the desired document again.
    let state = w.server.state().await;
    for i in 0..50 {
        let arn = format!("arn:aws:ssm:us-east-1:123456789012:parameter/fleet/p{i:04}");
        let live = &state["ssm"]["policies"][&arn][0]["Policy"];
        let live: Value = serde_json::from_str(live.as_str().unwrap()).unwrap();
        assert_eq!(live, ssm_doc(&arn, "ssm:GetParameter"), "{arn}");
    }
    // The walk is over: a new one may start.
    let again = w
        .invoke(&scheduled("walk-3"), Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(again["Status"], "DONE", "{again}");
    assert_eq!(again["Totals"]["InDrift"], 0);
}
