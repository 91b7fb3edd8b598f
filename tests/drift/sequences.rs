//! The adversarial sequences of issue 14, one test each, driven from event text: real
//! CloudFormation requests (Create; Update with OldResourceProperties; Delete with
//! PhysicalResourceId), EventBridge apply requests and CloudTrail events, against moto
//! (the ledger, DynamoDB, Kinesis), the test server (X-Ray, AMP, SSM), microburst and
//! tests/peers/ddb_proxy.py (DynamoDB's update lock, PolicyNotFoundException for a
//! stale ExpectedRevisionId, held writes). Each asserts the live policy and the ledger.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use resource_policy_provider::ledger::{Holding, Record, View};
use resource_policy_provider::policy::same_document;
use resource_policy_provider::services::Known;
use resource_policy_provider::settings::Settings;
use resource_policy_provider::target::Target;
use resource_policy_provider::{handle, sdk_loader, App};
use serde_json::{json, Value};

use super::{
    create_table, deadline_in, peers, recorder::Recorder, settings, World, ACCOUNT, TABLE,
};

const GUID: &str = "4a7c0e20-9d1b-11ef-8f3a-0a1b2c3d4e5f";
const OTHER_ACCOUNT: &str = "210987654321";
const SOMEONE: &str = "arn:aws:iam::123456789012:role/someone-else";
const TABLE_ARN: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/orders";

static SEQ: AtomicU64 = AtomicU64::new(1);

fn unique() -> String {
    format!(
        "{}-{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// How a test world is put together.
#[derive(Default)]
struct Build {
    /// tests/peers/ddb_proxy.py in front of moto for DynamoDB, with this lock (ms).
    ddb_lock_ms: Option<u64>,
    /// microburst in front of moto (DynamoDB and Kinesis), with these rules.
    microburst: Option<Value>,
}

/// An App with its own DynamoDB/Kinesis endpoint, the test server, and a mocked Lambda
/// Invoke that records the function's asynchronous invocations of itself.
async fn app_at(
    aws_url: &str,
    server_url: &str,
    settings: Settings,
) -> (Arc<App>, Arc<Mutex<Vec<Value>>>, Rule) {
    let config = |url: String| {
        sdk_loader(&settings)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(Credentials::for_tests())
            .endpoint_url(url)
            .load()
    };
    let ddb = aws_sdk_dynamodb::Client::new(&config(aws_url.to_string()).await);
    let invoked: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = invoked.clone();
    let rule = mock!(aws_sdk_lambda::Client::invoke).then_compute_output(move |r| {
        let payload = r.payload().map(|b| b.as_ref().to_vec()).unwrap_or_default();
        sink.lock()
            .unwrap()
            .push(serde_json::from_slice(&payload).unwrap());
        aws_sdk_lambda::operation::invoke::InvokeOutput::builder()
            .status_code(202)
            .build()
    });
    let lambda = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, [&rule]);
    let kinesis = aws_sdk_kinesis::Client::new(&config(aws_url.to_string()).await);
    // Whether an owner's stack resource still exists: yes, but for deleted stacks.
    let cloudformation = peers::stacks();
    let clients =
        resource_policy_provider::services::Clients::new(config(server_url.to_string()).await)
            .with_cloudformation("us-east-1", cloudformation)
            .with_kinesis("us-east-1", kinesis)
            .with_dynamodb("us-east-1", ddb)
            .with_lambda("us-east-1", lambda);
    (
        Arc::new(App::new(clients, settings, "us-east-1")),
        invoked,
        rule,
    )
}

/// A world like `super::world`, with a proxy in front of moto and tuned settings.
async fn build(b: Build, tune: impl FnOnce(&mut Settings)) -> World {
    let moto = peers::moto().await;
    let proxy = match (b.ddb_lock_ms, b.microburst) {
        (Some(lock), _) => Some(peers::ddb_proxy(&moto.url, lock)),
        (None, Some(rules)) => Some(peers::microburst(&moto.url, rules).await),
        (None, None) => None,
    };
    let aws_url = proxy.as_ref().map_or(moto.url.clone(), |p| p.url.clone());
    let server = peers::policy_server();
    let rec = Recorder::start().await;
    let mut s = settings(&rec);
    tune(&mut s);
    let (app, invoked, rule) = app_at(&aws_url, &server.url, s).await;
    create_table(&app.clients.dynamodb("us-east-1"), TABLE, "target").await;
    World {
        _moto: moto,
        proxy,
        server,
        app,
        http: resource_policy_provider::response_client(),
        rec,
        invoked,
        _invoke_rule: rule,
    }
}

async fn plain() -> World {
    build(Build::default(), |_| {}).await
}

fn stack_id(stack: &str) -> String {
    format!("arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/{stack}/{GUID}")
}

/// The ledger key of a stack's resource.
fn cfn_owner(stack: &str, logical: &str) -> String {
    format!("cfn:{}/{logical}", stack_id(stack))
}

fn sender_owner(account: &str, source: &str) -> String {
    format!("events:{account}/{source}")
}

/// A custom resource request as CloudFormation sends it.
#[allow(clippy::too_many_arguments)]
fn cfn_event(
    w: &World,
    path: &str,
    stack: &str,
    logical: &str,
    kind: &str,
    props: &Value,
    physical: Option<&str>,
    old: Option<&Value>,
) -> Value {
    let mut props = props.clone();
    props["ServiceToken"] = json!("arn:aws:lambda:us-east-1:123456789012:function:provider");
    let mut e = json!({
        "RequestType": kind,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provider",
        "ResponseURL": w.rec.url(path),
        "StackId": stack_id(stack),
        "RequestId": format!("{}-{}", path.len(), unique()),
        "ResourceType": "Custom::ResourcePolicy",
        "LogicalResourceId": logical,
        "ResourceProperties": props,
    });
    if let Some(p) = physical {
        e["PhysicalResourceId"] = json!(p);
    }
    if let Some(o) = old {
        let mut o = o.clone();
        o["ServiceToken"] = json!("arn:aws:lambda:us-east-1:123456789012:function:provider");
        e["OldResourceProperties"] = o;
    }
    e
}

/// Sends a custom resource request to `app` and returns CloudFormation's one answer.
#[allow(clippy::too_many_arguments)]
async fn cfn_via(
    w: &World,
    app: &Arc<App>,
    stack: &str,
    logical: &str,
    kind: &str,
    props: &Value,
    physical: Option<&str>,
    old: Option<&Value>,
) -> Value {
    let path = format!("{stack}-{logical}-{kind}-{}", unique());
    let e = cfn_event(w, &path, stack, logical, kind, props, physical, old);
    handle(
        app.clone(),
        &w.http,
        &e.to_string(),
        deadline_in(Duration::from_secs(60)),
    )
    .await
    .unwrap_or_else(|e| panic!("{kind} of {stack}/{logical} was not answered: {e}"));
    let got = w.rec.received(&path);
    assert_eq!(got.len(), 1, "exactly one answer for {path}");
    let body = got[0].body.clone();
    assert_eq!(body["StackId"], stack_id(stack));
    assert_eq!(body["LogicalResourceId"], logical);
    body
}

async fn create(w: &World, stack: &str, logical: &str, props: &Value) -> Value {
    cfn_via(w, &w.app, stack, logical, "Create", props, None, None).await
}

async fn update(
    w: &World,
    stack: &str,
    logical: &str,
    props: &Value,
    physical: &str,
    old: &Value,
) -> Value {
    cfn_via(
        w,
        &w.app,
        stack,
        logical,
        "Update",
        props,
        Some(physical),
        Some(old),
    )
    .await
}

async fn delete(w: &World, stack: &str, logical: &str, props: &Value, physical: &str) -> Value {
    cfn_via(
        w,
        &w.app,
        stack,
        logical,
        "Delete",
        props,
        Some(physical),
        None,
    )
    .await
}

fn ok(body: &Value) -> String {
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    body["PhysicalResourceId"].as_str().unwrap().to_string()
}

/// An EventBridge apply request from `account`, `source`.
fn apply_from(kind: &str, account: &str, source: &str, detail: Value) -> Value {
    json!({"version": "0", "id": format!("apply-{}", unique()), "detail-type": kind,
        "source": source, "account": account, "time": "2026-11-30T00:00:00Z",
        "region": "us-east-1", "resources": [], "detail": detail})
}

fn scheduled() -> Value {
    json!({"version": "0", "id": format!("walk-{}", unique()), "detail-type": "Scheduled Event",
        "source": "aws.events", "account": ACCOUNT, "time": "2026-11-30T00:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/provider-reconcile"],
        "detail": {}})
}

fn st(sid: &str, action: &str) -> Value {
    json!({"Sid": sid, "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": action, "Resource": "*"})
}

fn doc(statements: &[Value]) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn with(target: &Value, key: &str, v: Value) -> Value {
    let mut p = target.clone();
    p[key] = v;
    p
}

fn target_of(props: &Value) -> Target {
    match props.get("ResourceArn").and_then(Value::as_str) {
        Some(arn) => Target::from_arn(arn).unwrap(),
        None => Target::xray(props["PolicyName"].as_str().unwrap(), "us-east-1").unwrap(),
    }
}

fn statements_of(d: &Value) -> Vec<Value> {
    match &d["Statement"] {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        one => vec![one.clone()],
    }
}

fn sids_of(d: &Value) -> Vec<String> {
    statements_of(d)
        .iter()
        .map(|s| s["Sid"].as_str().unwrap_or("-").to_string())
        .collect()
}

/// The live policy document of a one-policy target (`None`: no policy).
async fn live(w: &World, props: &Value) -> Option<Value> {
    w.app
        .clients
        .read(&target_of(props), &Known::default())
        .await
        .unwrap()
        .map(|l| serde_json::from_str(&l.document).unwrap())
}

async fn live_sids(w: &World, props: &Value) -> Vec<String> {
    live(w, props)
        .await
        .map(|d| sids_of(&d))
        .unwrap_or_default()
}

/// Every policy on an SSM parameter (the test server's truth), as documents.
async fn ssm_policies(w: &World, arn: &str) -> Vec<Value> {
    w.server.state().await["ssm"]["policies"][arn]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| serde_json::from_str(p["Policy"].as_str().unwrap()).unwrap())
        .collect()
}

/// A policy written by hand, straight to the service (no guard).
async fn hand_put(w: &World, props: &Value, d: &Value) {
    use resource_policy_provider::policy::Policy;
    use resource_policy_provider::services::{Expected, PutInput};
    let policy = Policy::from_document(d.clone());
    let input = PutInput {
        policy: &policy,
        expected: Expected::Anything,
        resendable: true,
        known: &Known::default(),
        confirm_remove_self_resource_access: None,
        bypass_policy_lockout_check: None,
        client_token: "hand",
    };
    w.app.clients.put(&target_of(props), &input).await.unwrap();
}

async fn row(w: &World, target_id: &str) -> Option<View> {
    w.ledger().get(target_id).await.unwrap()
}

async fn record(w: &World, target_id: &str, owner: &str) -> Record {
    let v = row(w, target_id)
        .await
        .unwrap_or_else(|| panic!("a ledger row for {target_id}"));
    v.owners
        .get(owner)
        .unwrap_or_else(|| panic!("no record of {owner}: {:?}", v.owners.keys()))
        .clone()
}

fn trail_for(source: &str, name: &str, params: Value, caller: &str) -> Value {
    super::trail(source, name, params, caller)
}

fn xray_trail(name: &str, event: &str) -> Value {
    trail_for(
        "xray.amazonaws.com",
        event,
        json!({"policyName": name}),
        SOMEONE,
    )
}

async fn fault(w: &World, body: Value) {
    w.server
        .control(reqwest::Method::POST, "faults", Some(body))
        .await;
}

async fn ssm_parameter(w: &World, arn: &str) {
    w.server
        .control(
            reqwest::Method::POST,
            "ssm-resources",
            Some(json!({"arn": arn})),
        )
        .await;
}

// ---------------------------------------------------------------------------------
// 1
// ---------------------------------------------------------------------------------

/// Sequence 1: an SSM stack policy deleted out of band, repaired, then the stack's
/// Update, then its Delete. No step leaves a second (or stale, unmanaged) policy.
#[tokio::test]
async fn ssm_policy_repaired_after_out_of_band_delete_is_updated_and_deleted_without_orphans() {
    let w = plain().await;
    let arn = "arn:aws:ssm:us-east-1:123456789012:parameter/app/seq1";
    ssm_parameter(&w, arn).await;
    let theirs = doc(&[
        json!({"Sid": "Theirs", "Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "ssm:GetParameter", "Resource": arn}),
    ]);
    let ssm = w.app.clients.ssm("us-east-1");
    ssm.put_resource_policy()
        .resource_arn(arn)
        .policy(theirs.to_string())
        .send()
        .await
        .unwrap();
    let mine = |action: &str| {
        doc(&[
            json!({"Sid": "Mine", "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": action, "Resource": arn}),
        ])
    };
    let v1 = json!({"ResourceArn": arn, "Policy": mine("ssm:GetParameter")});
    let id = ok(&create(&w, "app", "ParamPolicy", &v1).await);
    assert_eq!(ssm_policies(&w, arn).await.len(), 2, "theirs and ours");
    let owner = cfn_owner("app", "ParamPolicy");
    let id1 = record(&w, arn, &owner)
        .await
        .policy_id
        .expect("PolicyId recorded");

    // Out of band: our policy is deleted; its CloudTrail event re-creates it (id2).
    let hash = ssm_policies_raw(&w, arn, &id1).await;
    ssm.delete_resource_policy()
        .resource_arn(arn)
        .policy_id(&id1)
        .policy_hash(hash)
        .send()
        .await
        .unwrap();
    assert_eq!(ssm_policies(&w, arn).await, vec![theirs.clone()]);
    let ev = trail_for(
        "ssm.amazonaws.com",
        "DeleteResourcePolicy",
        json!({"resourceArn": arn, "policyId": id1}),
        SOMEONE,
    );
    let out = w.invoke(&ev, Duration::from_secs(30)).await.unwrap();
    assert_eq!(out["Status"], "REPAIRED", "{out}");
    let policies = ssm_policies(&w, arn).await;
    assert_eq!(policies.len(), 2, "{policies:?}");
    assert!(policies.contains(&mine("ssm:GetParameter")));
    let id2 = record(&w, arn, &owner).await.policy_id.unwrap();
    assert_ne!(id1, id2, "the repair made a new policy and recorded its id");

    // The stack's Update: it replaces the repaired policy, never adds a third.
    let v2 = json!({"ResourceArn": arn, "Policy": mine("ssm:GetParameterHistory")});
    let same = ok(&update(&w, "app", "ParamPolicy", &v2, &id, &v1).await);
    assert_eq!(same, id, "same target: the id it received");
    let policies = ssm_policies(&w, arn).await;
    assert_eq!(
        policies.len(),
        2,
        "theirs and exactly one of ours: {policies:?}"
    );
    assert!(
        policies.contains(&mine("ssm:GetParameterHistory")),
        "{policies:?}"
    );
    assert!(
        !policies.contains(&mine("ssm:GetParameter")),
        "{policies:?}"
    );

    // The stack's Delete: ours goes, theirs stays, nothing unmanaged is left.
    ok(&delete(&w, "app", "ParamPolicy", &v2, &id).await);
    assert_eq!(ssm_policies(&w, arn).await, vec![theirs.clone()]);
    let r = record(&w, arn, &owner).await;
    assert!(!r.present && r.settled, "recorded gone and settled: {r:?}");

    // Later drift events and a reconcile leave it so.
    let out = w.invoke(&ev, Duration::from_secs(30)).await.unwrap();
    assert_ne!(out["Status"], "REPAIRED", "{out}");
    let out = w
        .invoke(&scheduled(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(out["Totals"]["Failed"], 0, "{out}");
    assert_eq!(ssm_policies(&w, arn).await, vec![theirs]);
}

/// The hash of the SSM policy `id` on `arn`.
async fn ssm_policies_raw(w: &World, arn: &str, id: &str) -> String {
    w.server.state().await["ssm"]["policies"][arn]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["PolicyId"] == id)
        .unwrap()["PolicyHash"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Sequence 1 as it was met: a stack deployed by the previous release holds the SSM id
/// `<arn>,<id1>`, and the ledger (its older item layout) records `id2`, the policy a
/// repair re-created. The stack's Update and Delete act on `id2`: no second policy, and
/// nothing left behind.
#[tokio::test]
async fn a_stale_ssm_physical_id_from_the_previous_release_resolves_through_the_ledger() {
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    let w = plain().await;
    let arn = "arn:aws:ssm:us-east-1:123456789012:parameter/app/seq1legacy";
    ssm_parameter(&w, arn).await;
    let mine = |action: &str| {
        doc(&[
            json!({"Sid": "Mine", "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": action, "Resource": arn}),
        ])
    };
    let v1 = json!({"ResourceArn": arn, "Policy": mine("ssm:GetParameter")});
    let out = w
        .app
        .clients
        .ssm("us-east-1")
        .put_resource_policy()
        .resource_arn(arn)
        .policy(mine("ssm:GetParameter").to_string())
        .send()
        .await
        .unwrap();
    let id2 = out.policy_id().unwrap().to_string();
    let owner = cfn_owner("app", "ParamPolicy");
    let old_owner = format!("cloudformation:{}", owner.strip_prefix("cfn:").unwrap());
    w.app
        .clients
        .dynamodb("us-east-1")
        .put_item()
        .table_name(TABLE)
        .item("target", Av::S(arn.into()))
        .item("service_key", Av::S("ssm".into()))
        .item("desired_request", Av::S(v1.to_string()))
        .item("owned_by", Av::S(old_owner))
        .item("policy_id", Av::S(id2.clone()))
        .send()
        .await
        .unwrap();
    let stale = format!("{arn},00000000-1111-4222-8333-444444444444");

    let v2 = json!({"ResourceArn": arn, "Policy": mine("ssm:GetParameterHistory")});
    let same = ok(&update(&w, "app", "ParamPolicy", &v2, &stale, &v1).await);
    assert_eq!(
        same, stale,
        "the id it received: CloudFormation deletes nothing"
    );
    let policies = ssm_policies(&w, arn).await;
    assert_eq!(
        policies,
        vec![mine("ssm:GetParameterHistory")],
        "updated in place"
    );
    let r = record(&w, arn, &owner).await;
    assert_eq!(r.policy_id.as_deref(), Some(id2.as_str()), "{r:?}");

    ok(&delete(&w, "app", "ParamPolicy", &v2, &stale).await);
    assert_eq!(
        ssm_policies(&w, arn).await,
        Vec::<Value>::new(),
        "nothing left"
    );
    let r = record(&w, arn, &owner).await;
    assert!(!r.present, "{r:?}");
    let out = w
        .invoke(&scheduled(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(out["Totals"]["Failed"], 0, "{out}");
    assert_eq!(ssm_policies(&w, arn).await, Vec::<Value>::new());
}

// ---------------------------------------------------------------------------------
// 2
// ---------------------------------------------------------------------------------

/// Sequence 2: stack S owns `Mine`; its Update to `[Mine, ReadAccess]` (ReadAccess is
/// stack O's) is refused; the rollback Update (props = the old list,
/// OldResourceProperties = the refused one) removes nothing of O's or the hand's.
#[tokio::test]
async fn a_rollback_update_after_a_refused_sid_keeps_the_other_owners_and_hand_written_statements()
{
    let w = plain().await;
    let target = json!({"PolicyName": "seq2"});
    let a = "xray:PutTraceSegments";
    hand_put(&w, &target, &doc(&[st("Hand", "xray:GetSamplingRules")])).await;
    let o_props = with(
        &target,
        "Statements",
        json!([st("ReadAccess", "xray:BatchGetTraces")]),
    );
    ok(&create(&w, "other", "Grant", &o_props).await);
    let mine = with(&target, "Statements", json!([st("Mine", a)]));
    let id = ok(&create(&w, "app", "Grant", &mine).await);
    assert_eq!(live_sids(&w, &target).await, ["Hand", "ReadAccess", "Mine"]);

    let refused_props = with(
        &target,
        "Statements",
        json!([st("Mine", a), st("ReadAccess", "xray:*")]),
    );
    let refused = update(&w, "app", "Grant", &refused_props, &id, &mine).await;
    assert_eq!(refused["Status"], "FAILED", "{refused}");
    assert_eq!(refused["PhysicalResourceId"], id);
    let why = refused["Reason"].as_str().unwrap();
    assert!(why.contains("ReadAccess") && why.contains("other"), "{why}");
    let live1 = live(&w, &target).await.unwrap();
    assert!(statements_of(&live1).contains(&st("ReadAccess", "xray:BatchGetTraces")));

    // CloudFormation's rollback: back to the old properties, Old = the refused list.
    let back = update(&w, "app", "Grant", &mine, &id, &refused_props).await;
    assert_eq!(ok(&back), id);
    let after = live(&w, &target).await.unwrap();
    let list = statements_of(&after);
    assert_eq!(sids_of(&after), ["Hand", "ReadAccess", "Mine"], "{after}");
    assert!(
        list.contains(&st("ReadAccess", "xray:BatchGetTraces")),
        "{after}"
    );
    assert!(
        list.contains(&st("Hand", "xray:GetSamplingRules")),
        "{after}"
    );
    let id_t = target_of(&target).display_id();
    let o = record(&w, &id_t, &cfn_owner("other", "Grant")).await;
    assert!(o.present && o.holding.sids() == ["ReadAccess"], "{o:?}");
    let s = record(&w, &id_t, &cfn_owner("app", "Grant")).await;
    assert!(s.present && s.holding.sids() == ["Mine"], "{s:?}");

    // A repair afterwards agrees: nothing to change.
    let out = w
        .invoke(
            &xray_trail("seq2", "PutResourcePolicy"),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(out["Status"], "IN_SYNC", "{out}");
}

/// Sequence 2, hand-written side (docs/shared-policies.md: "A `Sid` already in the
/// policy from a hand-written statement with a different body is refused too"): an
/// Update naming a hand-written statement's Sid with another body is refused, and the
/// rollback leaves the hand-written statement as it was.
#[tokio::test]
async fn a_sid_of_a_hand_written_statement_with_another_body_is_refused_and_survives_the_rollback()
{
    let w = plain().await;
    let target = json!({"PolicyName": "seq2h"});
    let hand = st("ReadAccess", "xray:BatchGetTraces");
    hand_put(&w, &target, &doc(std::slice::from_ref(&hand))).await;
    let mine = with(
        &target,
        "Statements",
        json!([st("Mine", "xray:PutTraceSegments")]),
    );
    let id = ok(&create(&w, "app", "Grant", &mine).await);
    let wider = with(
        &target,
        "Statements",
        json!([
            st("Mine", "xray:PutTraceSegments"),
            st("ReadAccess", "xray:*")
        ]),
    );
    let out = update(&w, "app", "Grant", &wider, &id, &mine).await;
    // Whatever the answer, the stack rolls back (another resource may have failed).
    let back = update(&w, "app", "Grant", &mine, &id, &wider).await;
    ok(&back);
    let after = live(&w, &target).await.unwrap();
    assert!(
        statements_of(&after).contains(&hand),
        "the hand-written statement is as it was (the Update answered {out}): {after}"
    );
    assert_eq!(out["Status"], "FAILED", "refused: {out}");
    assert!(
        out["Reason"].as_str().unwrap().contains("ReadAccess"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------
// 3
// ---------------------------------------------------------------------------------

/// Sequence 3: a Delete whose removal cannot finish (the service keeps failing past the
/// budget) answers SUCCESS with the owner recorded gone; a later CloudTrail event and the
/// reconcile finish the removal and never put the grant back.
#[tokio::test]
async fn a_delete_that_cannot_finish_leaves_the_owner_gone_and_repairs_finish_the_removal() {
    let w = plain().await;
    let props = json!({"PolicyName": "seq3", "Policy": doc(&[st("Grant", "xray:PutTraceSegments")]), "ServiceTimeout": 3});
    let id = ok(&create(&w, "app", "Tracing", &props).await);
    let id_t = "xray:us-east-1:policy/seq3";
    assert!(live(&w, &props).await.is_some());

    // Every DeleteResourcePolicy is throttled until the budget runs out.
    fault(
        &w,
        json!({"service": "xray", "operation": "DeleteResourcePolicy", "error": "ThrottledException", "count": 1000}),
    )
    .await;
    let gone = delete(&w, "app", "Tracing", &props, &id).await;
    assert_eq!(ok(&gone), id, "the stack is not held up: {gone}");
    let r = record(&w, id_t, &cfn_owner("app", "Tracing")).await;
    assert!(
        !r.present,
        "recorded gone before the service was touched: {r:?}"
    );
    assert!(
        live(&w, &props).await.is_some(),
        "the removal really did not finish (the fault held)"
    );
    w.server
        .control(reqwest::Method::DELETE, "faults", None)
        .await;

    // Someone touches the policy: the repair finishes the removal, it does not restore.
    let out = w
        .invoke(
            &xray_trail("seq3", "PutResourcePolicy"),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(out["Status"], "REPAIRED", "{out}");
    assert_eq!(live(&w, &props).await, None, "the grant is gone");

    // Deleted again by hand, then events and the reconcile: never put back.
    let out = w
        .invoke(
            &xray_trail("seq3", "DeleteResourcePolicy"),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(out["Status"], "IN_SYNC", "{out}");
    let out = w
        .invoke(&scheduled(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(out["Totals"]["Failed"], 0, "{out}");
    assert_eq!(
        live(&w, &props).await,
        None,
        "the reconcile does not restore it"
    );
    let r = record(&w, id_t, &cfn_owner("app", "Tracing")).await;
    assert!(!r.present, "{r:?}");
}

/// Sequence 3, the reconcile's side: the removal failed and nobody touched the policy;
/// the next reconcile finishes it.
#[tokio::test]
async fn the_reconcile_finishes_a_removal_that_did_not_finish() {
    let w = plain().await;
    let target = json!({"PolicyName": "seq3b"});
    hand_put(&w, &target, &doc(&[st("Hand", "xray:GetSamplingRules")])).await;
    let props = with(
        &target,
        "Statements",
        json!([st("Owned", "xray:PutTraceSegments")]),
    );
    let props = with(&props, "ServiceTimeout", json!(3));
    let id = ok(&create(&w, "app", "Grant", &props).await);
    assert_eq!(live_sids(&w, &target).await, ["Hand", "Owned"]);
    fault(
        &w,
        json!({"service": "xray", "operation": "PutResourcePolicy", "error": "ThrottledException", "count": 1000}),
    )
    .await;
    ok(&delete(&w, "app", "Grant", &props, &id).await);
    assert_eq!(
        live_sids(&w, &target).await,
        ["Hand", "Owned"],
        "not finished"
    );
    w.server
        .control(reqwest::Method::DELETE, "faults", None)
        .await;
    let out = w
        .invoke(&scheduled(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(out["Status"], "DONE", "{out}");
    assert_eq!(out["Totals"]["Failed"], 0, "{out}");
    assert_eq!(out["Totals"]["Repaired"], 1, "{out}");
    assert_eq!(
        live_sids(&w, &target).await,
        ["Hand"],
        "finished, hand-written kept"
    );
    let out = w
        .invoke(&scheduled(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(out["Totals"]["Repaired"], 0, "{out}");
    assert_eq!(live_sids(&w, &target).await, ["Hand"]);
}

/// Sequence 3, outcome unknown: a Create's and then a Delete's write land but their
/// replies are lost (ddb_proxy `lose_reply`); both complete, the Delete leaves nothing
/// behind, and no repair restores it.
#[tokio::test]
async fn writes_whose_replies_are_lost_still_create_and_delete_exactly_once() {
    let w = ddb_world(0).await;
    let target = json!({"ResourceArn": TABLE_ARN});
    let props = with(
        &target,
        "Statements",
        json!([st("Lost", "dynamodb:GetItem")]),
    );
    let lose = || async {
        proxy(&w)
            .proxy(
                reqwest::Method::POST,
                "faults",
                Some(json!({"kind": "lose_reply", "arn": TABLE_ARN})),
            )
            .await;
    };
    lose().await;
    let id = ok(&create(&w, "app", "Grant", &props).await);
    assert_eq!(proxy(&w).proxy_count(TABLE_ARN, "lost_replies").await, 1);
    assert_eq!(live_sids(&w, &target).await, ["Lost"]);
    let r = record(&w, TABLE_ARN, &cfn_owner("app", "Grant")).await;
    assert!(r.present && r.settled, "{r:?}");

    lose().await;
    ok(&delete(&w, "app", "Grant", &props, &id).await);
    assert_eq!(proxy(&w).proxy_count(TABLE_ARN, "lost_replies").await, 2);
    assert_eq!(live(&w, &target).await, None);
    let r = record(&w, TABLE_ARN, &cfn_owner("app", "Grant")).await;
    assert!(!r.present && r.settled, "{r:?}");
    let ev = trail_for(
        "dynamodb.amazonaws.com",
        "DeleteResourcePolicy",
        json!({"resourceArn": TABLE_ARN}),
        SOMEONE,
    );
    let out = w.invoke(&ev, Duration::from_secs(30)).await.unwrap();
    assert_eq!(out["Status"], "IN_SYNC", "{out}");
    assert_eq!(live(&w, &target).await, None);
}

/// Sequence 3, on a Create: the write lands but its answer comes too late for the
/// budget (the test server holds the reply), so the Create fails with the real id; the
/// rollback Delete removes the grant, and no repair brings it back.
#[tokio::test]
async fn a_create_whose_outcome_is_unknown_is_removed_by_its_rollback_and_stays_removed() {
    let w = plain().await;
    let props = json!({"PolicyName": "seq3c", "Policy": doc(&[st("Grant", "xray:PutTraceSegments")]), "ServiceTimeout": 3});
    fault(
        &w,
        json!({"service": "xray", "operation": "PutResourcePolicy", "hold_ms": 6000}),
    )
    .await;
    let out = create(&w, "app", "Tracing", &props).await;
    assert_eq!(out["Status"], "FAILED", "{out}");
    let id = out["PhysicalResourceId"].as_str().unwrap().to_string();
    assert_eq!(
        id, "xray:us-east-1:policy/seq3c",
        "the real id, so the rollback cleans up"
    );
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(live(&w, &props).await.is_some(), "the write did land");
    ok(&delete(&w, "app", "Tracing", &props, &id).await);
    assert_eq!(live(&w, &props).await, None);
    let r = record(&w, &id, &cfn_owner("app", "Tracing")).await;
    assert!(!r.present, "{r:?}");
    let out = w
        .invoke(
            &xray_trail("seq3c", "DeleteResourcePolicy"),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_ne!(out["Status"], "REPAIRED", "{out}");
    let out = w
        .invoke(&scheduled(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(out["Totals"]["Repaired"], 0, "{out}");
    assert_eq!(live(&w, &props).await, None);
}

// ---------------------------------------------------------------------------------
// 4
// ---------------------------------------------------------------------------------

async fn ddb_world(lock_ms: u64) -> World {
    let w = build(
        Build {
            ddb_lock_ms: Some(lock_ms),
            ..Build::default()
        },
        |_| {},
    )
    .await;
    create_table(&w.app.clients.dynamodb("us-east-1"), "orders", "id").await;
    w
}

/// Someone else's PutResourcePolicy on the table, as CloudTrail reports it.
fn table_drift() -> Value {
    trail_for(
        "dynamodb.amazonaws.com",
        "PutResourcePolicy",
        json!({"resourceArn": TABLE_ARN}),
        SOMEONE,
    )
}

fn proxy(w: &World) -> &peers::Peer {
    w.proxy.as_ref().unwrap()
}

/// Sequence 4: a repair that read the ledger is held at its write while owner B's Delete
/// removes B's statement; the held write (a stale view) arrives after: B's statement is
/// not back at the end, and the ledger says B is gone.
#[tokio::test]
async fn a_repair_held_at_its_write_does_not_bring_back_a_statement_its_owner_deleted() {
    let w = Arc::new(ddb_world(0).await);
    let target = json!({"ResourceArn": TABLE_ARN});
    let a = with(&target, "Statements", json!([st("A", "dynamodb:GetItem")]));
    let b = with(&target, "Statements", json!([st("B", "dynamodb:PutItem")]));
    ok(&create(&w, "stack-a", "Grant", &a).await);
    let b_id = ok(&create(&w, "stack-b", "Grant", &b).await);
    assert_eq!(live_sids(&w, &target).await, ["A", "B"]);

    // Drift: A's statement removed by hand, so a repair must write.
    hand_put(&w, &target, &doc(&[st("B", "dynamodb:PutItem")])).await;
    let rejected_before = proxy(&w)
        .proxy_count(TABLE_ARN, "precondition_failed")
        .await;
    proxy(&w)
        .proxy(
            reqwest::Method::POST,
            "faults",
            Some(json!({"kind": "hold", "arn": TABLE_ARN, "operation": "PutResourcePolicy", "ms": 2500})),
        )
        .await;
    let repair = {
        let w = w.clone();
        tokio::spawn(async move {
            let ev = table_drift();
            w.invoke(&ev, Duration::from_secs(30)).await
        })
    };
    // The repair has read the ledger and is held at its write; B deletes its statement.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        proxy(&w).proxy_count(TABLE_ARN, "held").await,
        1,
        "the repair's write is being held"
    );
    ok(&delete(&w, "stack-b", "Grant", &b, &b_id).await);
    let out = repair.await.unwrap().unwrap();
    assert_ne!(out["Status"], "FAILED", "{out}");
    assert!(
        proxy(&w)
            .proxy_count(TABLE_ARN, "precondition_failed")
            .await
            > rejected_before,
        "the held write arrived stale and was refused by its precondition"
    );
    assert_eq!(
        live_sids(&w, &target).await,
        ["A"],
        "B's statement is not back"
    );
    let r = record(&w, TABLE_ARN, &cfn_owner("stack-b", "Grant")).await;
    assert!(!r.present, "{r:?}");
    // And a later check agrees: nothing owned by nobody.
    let ev = table_drift();
    let out = w.invoke(&ev, Duration::from_secs(30)).await.unwrap();
    assert_eq!(out["Status"], "IN_SYNC", "{out}");
}

/// Sequence 4, a write that lands late: the repair's write is held past its attempt
/// timeout (its outcome unknown, the SDK does not resend it) while the owner deletes
/// its statement; the repair reads again, finds nothing to do, and only then the held
/// write arrives, guarded by a revision nobody has moved since, so it passes. The
/// repair's late-write window catches it: the statement does not stay.
#[tokio::test]
async fn a_write_that_lands_after_its_writer_read_again_does_not_bring_back_a_deleted_statement() {
    let w = Arc::new(
        build(
            Build {
                ddb_lock_ms: Some(0),
                ..Build::default()
            },
            |s| {
                s.sdk_max_attempts = 1;
                s.sdk_attempt_timeout = Duration::from_millis(1500);
                s.late_write_window = Duration::from_millis(4000);
            },
        )
        .await,
    );
    create_table(&w.app.clients.dynamodb("us-east-1"), "orders", "id").await;
    let target = json!({"ResourceArn": TABLE_ARN});
    let a = with(&target, "Statements", json!([st("A", "dynamodb:GetItem")]));
    let a_id = ok(&create(&w, "stack-a", "Grant", &a).await);
    // Drift: A's statement replaced by a hand-written one, so a repair must write.
    hand_put(&w, &target, &doc(&[st("Hand", "dynamodb:Query")])).await;
    let writes_before = proxy(&w).proxy_count(TABLE_ARN, "writes").await;
    let held_from = tokio::time::Instant::now();
    proxy(&w)
        .proxy(
            reqwest::Method::POST,
            "faults",
            Some(json!({"kind": "hold", "arn": TABLE_ARN, "operation": "PutResourcePolicy", "ms": 3000})),
        )
        .await;
    let repair = {
        let w = w.clone();
        tokio::spawn(async move {
            let ev = table_drift();
            w.invoke(&ev, Duration::from_secs(60)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        proxy(&w).proxy_count(TABLE_ARN, "held").await,
        1,
        "the repair's write is being held"
    );
    // The owner deletes: nothing of it is live, so its Delete writes nothing.
    ok(&delete(&w, "stack-a", "Grant", &a, &a_id).await);
    let out = repair.await.unwrap().unwrap();
    assert_ne!(out["Status"], "FAILED", "{out}");
    // Past the hold: whatever the held write did, it has done it.
    tokio::time::sleep_until(held_from + Duration::from_millis(3500)).await;
    assert_eq!(
        live_sids(&w, &target).await,
        ["Hand"],
        "A's deleted statement is not back"
    );
    assert_eq!(
        proxy(&w).proxy_count(TABLE_ARN, "writes").await - writes_before,
        2,
        "the held write landed late, and the repair wrote its correction"
    );
    let ev = table_drift();
    let out = w.invoke(&ev, Duration::from_secs(30)).await.unwrap();
    assert_eq!(out["Status"], "IN_SYNC", "{out}");
}

/// Sequence 4, whole-policy variant: the repair is held while the stack deletes the
/// whole policy; the stale write meets PolicyNotFoundException (ExpectedRevisionId on a
/// policy that no longer exists) and the policy is not back.
#[tokio::test]
async fn a_repair_held_at_its_write_does_not_bring_back_a_whole_policy_its_stack_deleted() {
    let w = Arc::new(ddb_world(0).await);
    let props =
        json!({"ResourceArn": TABLE_ARN, "Policy": doc(&[st("Whole", "dynamodb:GetItem")])});
    let id = ok(&create(&w, "app", "TablePolicy", &props).await);
    hand_put(&w, &props, &doc(&[st("Whole", "dynamodb:*")])).await;
    proxy(&w)
        .proxy(
            reqwest::Method::POST,
            "faults",
            Some(json!({"kind": "hold", "arn": TABLE_ARN, "operation": "PutResourcePolicy", "ms": 2500})),
        )
        .await;
    let repair = {
        let w = w.clone();
        tokio::spawn(async move {
            let ev = table_drift();
            w.invoke(&ev, Duration::from_secs(30)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(proxy(&w).proxy_count(TABLE_ARN, "held").await, 1);
    ok(&delete(&w, "app", "TablePolicy", &props, &id).await);
    assert_eq!(live(&w, &props).await, None);
    let out = repair.await.unwrap();
    assert!(
        proxy(&w)
            .proxy_count(TABLE_ARN, "precondition_failed")
            .await
            >= 1,
        "the stale write met PolicyNotFoundException: {out:?}"
    );
    assert_eq!(live(&w, &props).await, None, "the whole policy is not back");
    if let Some(v) = row(&w, TABLE_ARN).await {
        assert!(v.present().is_empty(), "no present owner: {v:?}");
    }
}

/// Sequence 4, Kinesis (no precondition): a repair's merge write is delayed in flight
/// (microburst latency) while owner B deletes its statement; the late write, made from
/// the view before B's Delete, does not leave B's statement in force.
#[tokio::test]
async fn a_slow_kinesis_merge_write_does_not_leave_a_statement_its_owner_deleted() {
    let w = Arc::new(
        build(
            Build {
                microburst: Some(json!([])),
                ..Build::default()
            },
            |_| {},
        )
        .await,
    );
    let stream = "arn:aws:kinesis:us-east-1:123456789012:stream/seq4k";
    w.app
        .clients
        .kinesis("us-east-1")
        .create_stream()
        .stream_name("seq4k")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    let target = json!({"ResourceArn": stream});
    let a = with(
        &target,
        "Statements",
        json!([st("A", "kinesis:GetRecords")]),
    );
    let b = with(
        &target,
        "Statements",
        json!([st("B", "kinesis:DescribeStream")]),
    );
    ok(&create(&w, "stack-a", "Grant", &a).await);
    let b_id = ok(&create(&w, "stack-b", "Grant", &b).await);
    assert_eq!(live_sids(&w, &target).await, ["A", "B"]);
    hand_put(&w, &target, &doc(&[st("B", "kinesis:DescribeStream")])).await;

    // The next Kinesis PutResourcePolicy (the repair's) is held 2 s before it is sent on.
    let mb = w.proxy.as_ref().unwrap();
    let rules = json!([{"service": "kinesis", "operation": "PutResourcePolicy", "latency": 2000, "times": 1}]);
    let set = resource_policy_provider::response_client()
        .post(format!("{}/_microburst/rules", mb.url))
        .body(rules.to_string())
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success());
    let repair = {
        let w = w.clone();
        tokio::spawn(async move {
            let ev = trail_for(
                "kinesis.amazonaws.com",
                "PutResourcePolicy",
                json!({"resourceARN": stream}),
                SOMEONE,
            );
            w.invoke(&ev, Duration::from_secs(30)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    ok(&delete(&w, "stack-b", "Grant", &b, &b_id).await);
    let out = repair.await.unwrap().unwrap();
    assert_ne!(out["Status"], "FAILED", "{out}");
    assert!(
        mb.faulted("kinesis").await >= 1,
        "the repair's write was delayed"
    );
    // Past every settle window: the end state holds.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        live_sids(&w, &target).await,
        ["A"],
        "B's statement is not back"
    );
    let r = record(&w, stream, &cfn_owner("stack-b", "Grant")).await;
    assert!(!r.present, "{r:?}");
    let ev = trail_for(
        "kinesis.amazonaws.com",
        "PutResourcePolicy",
        json!({"resourceARN": stream}),
        SOMEONE,
    );
    let out = w.invoke(&ev, Duration::from_secs(30)).await.unwrap();
    assert_eq!(out["Status"], "IN_SYNC", "{out}");
}

// ---------------------------------------------------------------------------------
// 5
// ---------------------------------------------------------------------------------

/// Sequence 5: once its owner removed a grant, no event anyone can send makes the
/// function put it back: a forged CloudTrail event carrying the grant, an apply request
/// from an account that is not allowed, another sender's Delete, the reconcile.
#[tokio::test]
async fn no_event_makes_the_function_restore_a_grant_its_owner_removed() {
    let w = plain().await;
    let target = json!({"PolicyName": "seq5"});
    let grant = st("Exfil", "xray:BatchGetTraces");
    let keep = st("Keep", "xray:PutTraceSegments");
    let put = |account: &str, source: &str, s: Value| {
        apply_from(
            "PutResourcePolicy",
            account,
            source,
            with(&target, "Statements", json!([s])),
        )
    };
    let out = w
        .invoke(
            &put(ACCOUNT, "team.a", grant.clone()),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(out["Status"], "APPLIED", "{out}");
    w.invoke(
        &put(ACCOUNT, "team.b", keep.clone()),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let del = apply_from(
        "DeleteResourcePolicy",
        ACCOUNT,
        "team.a",
        with(&target, "Statements", json!([{"Sid": "Exfil"}])),
    );
    assert_eq!(
        w.invoke(&del, Duration::from_secs(30)).await.unwrap()["Status"],
        "DELETED"
    );
    assert_eq!(live_sids(&w, &target).await, ["Keep"]);
    let puts = w.server.calls("xray", "PutResourcePolicy").await;

    // A forged CloudTrail event whose requestParameters carry the removed grant.
    let forged = trail_for(
        "xray.amazonaws.com",
        "PutResourcePolicy",
        json!({"policyName": "seq5", "policyDocument": doc(&[grant.clone(), keep.clone()]).to_string()}),
        SOMEONE,
    );
    let out = w.invoke(&forged, Duration::from_secs(30)).await.unwrap();
    assert_eq!(out["Status"], "IN_SYNC", "{out}");
    // The same, claiming to come from the function's own role.
    let own = trail_for(
        "xray.amazonaws.com",
        "PutResourcePolicy",
        json!({"policyName": "seq5"}),
        super::ROLE,
    );
    assert_eq!(
        w.invoke(&own, Duration::from_secs(30)).await.unwrap()["Status"],
        "IGNORED"
    );
    // An apply request from an account that is not allowed, in the owner's name.
    let e = w
        .invoke(
            &put("999999999999", "team.a", grant.clone()),
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "InvalidRequest", "{e}");
    // Another sender's Delete naming the Sid.
    let other_del = apply_from(
        "DeleteResourcePolicy",
        ACCOUNT,
        "team.b",
        with(&target, "Statements", json!([{"Sid": "Exfil"}])),
    );
    w.invoke(&other_del, Duration::from_secs(30)).await.unwrap();
    // The reconcile.
    let out = w
        .invoke(&scheduled(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(out["Totals"]["Repaired"], 0, "{out}");

    assert_eq!(
        live_sids(&w, &target).await,
        ["Keep"],
        "the grant stays removed"
    );
    assert_eq!(
        w.server.calls("xray", "PutResourcePolicy").await,
        puts,
        "nothing was written"
    );
    let id_t = target_of(&target).display_id();
    let a = record(&w, &id_t, &sender_owner(ACCOUNT, "team.a")).await;
    assert!(!a.present, "{a:?}");
    let b = record(&w, &id_t, &sender_owner(ACCOUNT, "team.b")).await;
    assert!(
        b.present && b.holding == Holding::Statements(vec![keep]),
        "{b:?}"
    );
}

// ---------------------------------------------------------------------------------
// 6
// ---------------------------------------------------------------------------------

/// Sequence 6: a parameter with a hand-written policy and two statement owners keeps
/// exactly one managed policy whatever drift events and reconciles do.
#[tokio::test]
async fn ssm_shared_statements_never_grow_past_one_managed_policy() {
    let w = plain().await;
    let arn = "arn:aws:ssm:us-east-1:123456789012:parameter/app/seq6";
    ssm_parameter(&w, arn).await;
    let theirs = doc(&[
        json!({"Sid": "Theirs", "Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "ssm:GetParameter", "Resource": arn}),
    ]);
    let ssm = w.app.clients.ssm("us-east-1");
    ssm.put_resource_policy()
        .resource_arn(arn)
        .policy(theirs.to_string())
        .send()
        .await
        .unwrap();
    let target = json!({"ResourceArn": arn});
    let s = |sid: &str| json!({"Sid": sid, "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "ssm:GetParameter", "Resource": arn});
    ok(&create(
        &w,
        "s1",
        "Grant",
        &with(&target, "Statements", json!([s("One")])),
    )
    .await);
    ok(&create(
        &w,
        "s2",
        "Grant",
        &with(&target, "Statements", json!([s("Two")])),
    )
    .await);
    let check = |policies: Vec<Value>, step: &str| {
        assert_eq!(
            policies.len(),
            2,
            "{step}: theirs and one shared: {policies:?}"
        );
        assert!(policies.contains(&theirs), "{step}: {policies:?}");
        let shared = policies.iter().find(|p| **p != theirs).unwrap();
        let mut sids = sids_of(shared);
        sids.sort();
        assert_eq!(sids, ["One", "Two"], "{step}: {shared}");
    };
    check(ssm_policies(&w, arn).await, "created");
    let shared_id = row(&w, arn).await.unwrap().shared_policy_id;
    assert!(
        shared_id.is_some(),
        "the ledger records the shared PolicyId"
    );
    let ev = trail_for(
        "ssm.amazonaws.com",
        "PutResourcePolicy",
        json!({"resourceArn": arn}),
        SOMEONE,
    );
    for round in 0..3 {
        let out = w.invoke(&ev, Duration::from_secs(30)).await.unwrap();
        assert_ne!(out["Status"], "FAILED", "{out}");
        check(ssm_policies(&w, arn).await, &format!("event {round}"));
        let out = w
            .invoke(&scheduled(), Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(out["Totals"]["Failed"], 0, "{out}");
        check(ssm_policies(&w, arn).await, &format!("reconcile {round}"));
    }
    // Drift: the shared policy is edited, then deleted, by hand; each repaired in place.
    let state = w.server.state().await;
    let shared = state["ssm"]["policies"][arn]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| Some(p["PolicyId"].as_str().unwrap().to_string()) == shared_id)
        .cloned()
        .expect("the recorded id is the live shared policy");
    ssm.put_resource_policy()
        .resource_arn(arn)
        .policy(doc(&[s("One")]).to_string())
        .policy_id(shared["PolicyId"].as_str().unwrap())
        .policy_hash(shared["PolicyHash"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let out = w.invoke(&ev, Duration::from_secs(30)).await.unwrap();
    assert_eq!(out["Status"], "REPAIRED", "{out}");
    check(ssm_policies(&w, arn).await, "edited, repaired");
    let pid = row(&w, arn).await.unwrap().shared_policy_id.unwrap();
    let hash = ssm_policies_raw(&w, arn, &pid).await;
    ssm.delete_resource_policy()
        .resource_arn(arn)
        .policy_id(&pid)
        .policy_hash(hash)
        .send()
        .await
        .unwrap();
    for round in 0..2 {
        let out = w.invoke(&ev, Duration::from_secs(30)).await.unwrap();
        assert_ne!(out["Status"], "FAILED", "{out}");
        check(
            ssm_policies(&w, arn).await,
            &format!("deleted, event {round}"),
        );
        let out = w
            .invoke(&scheduled(), Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(out["Totals"]["Failed"], 0, "{out}");
        check(
            ssm_policies(&w, arn).await,
            &format!("deleted, reconcile {round}"),
        );
    }
}

/// Sequence 6, concurrent: statement owners created together on a parameter that has
/// no shared policy yet end with one managed policy holding all of them.
#[tokio::test]
async fn ssm_statement_owners_created_together_make_one_managed_policy() {
    let w = Arc::new(plain().await);
    let arn = "arn:aws:ssm:us-east-1:123456789012:parameter/app/seq6c";
    ssm_parameter(&w, arn).await;
    let target = json!({"ResourceArn": arn});
    let mut runs = tokio::task::JoinSet::new();
    for i in 0..5 {
        let w = w.clone();
        let props = with(
            &target,
            "Statements",
            json!([{"Sid": format!("S{i}"), "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "ssm:GetParameter", "Resource": arn}]),
        );
        runs.spawn(async move { create(&w, &format!("stack-{i}"), "Grant", &props).await });
    }
    while let Some(done) = runs.join_next().await {
        ok(&done.unwrap());
    }
    let policies = ssm_policies(&w, arn).await;
    assert_eq!(policies.len(), 1, "one shared policy: {policies:?}");
    let mut sids = sids_of(&policies[0]);
    sids.sort();
    assert_eq!(sids, ["S0", "S1", "S2", "S3", "S4"]);
    let v = row(&w, arn).await.unwrap();
    let pid = v
        .shared_policy_id
        .clone()
        .expect("the shared PolicyId is recorded");
    let live_id = w.server.state().await["ssm"]["policies"][arn][0]["PolicyId"].clone();
    assert_eq!(live_id, pid, "the recorded id is the live one");
    let out = w
        .invoke(&scheduled(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(out["Totals"]["InDrift"], 0, "{out}");
    assert_eq!(ssm_policies(&w, arn).await.len(), 1);
}

// ---------------------------------------------------------------------------------
// 7
// ---------------------------------------------------------------------------------

/// Sequence 7: a sender's DeleteResourcePolicy with `Statements: []`, a Sid-less
/// statement, a duplicate Sid, or no Statements is InvalidRequest naming Statements and
/// removes nothing; a valid one removes only that sender's Sids.
#[tokio::test]
async fn a_malformed_apply_delete_is_refused_naming_statements_and_a_valid_one_removes_only_the_senders_sids(
) {
    let w = plain().await;
    let target = json!({"PolicyName": "seq7"});
    let a = "xray:PutTraceSegments";
    hand_put(&w, &target, &doc(&[st("Hand", a)])).await;
    for (source, list) in [
        ("team.a", json!([st("A1", a), st("A2", a)])),
        ("team.b", json!([st("B", a)])),
    ] {
        let e = apply_from(
            "PutResourcePolicy",
            ACCOUNT,
            source,
            with(&target, "Statements", list),
        );
        assert_eq!(
            w.invoke(&e, Duration::from_secs(30)).await.unwrap()["Status"],
            "APPLIED"
        );
    }
    let all = ["Hand", "A1", "A2", "B"];
    assert_eq!(live_sids(&w, &target).await, all);
    let id_t = target_of(&target).display_id();
    let before = row(&w, &id_t).await.unwrap();
    let writes = w.server.calls("xray", "PutResourcePolicy").await
        + w.server.calls("xray", "DeleteResourcePolicy").await;
    for (what, detail) in [
        ("empty", with(&target, "Statements", json!([]))),
        (
            "Sid-less",
            with(
                &target,
                "Statements",
                json!([{"Effect": "Allow", "Principal": "*", "Action": a, "Resource": "*"}]),
            ),
        ),
        (
            "duplicate Sid",
            with(&target, "Statements", json!([st("A1", a), st("A1", a)])),
        ),
        ("missing", target.clone()),
    ] {
        let e = apply_from("DeleteResourcePolicy", ACCOUNT, "team.a", detail);
        let err = w.invoke(&e, Duration::from_secs(30)).await.expect_err(what);
        assert_eq!(err.error_type(), "InvalidRequest", "{what}: {err}");
        assert!(err.to_string().contains("Statements"), "{what}: {err}");
        assert_eq!(live_sids(&w, &target).await, all, "{what}: nothing removed");
    }
    assert_eq!(
        w.server.calls("xray", "PutResourcePolicy").await
            + w.server.calls("xray", "DeleteResourcePolicy").await,
        writes,
        "no write went out"
    );
    let after = row(&w, &id_t).await.unwrap();
    assert_eq!(after.owners, before.owners, "the ledger is untouched");

    // A sender that holds nothing there, with no Statements: nothing to remove.
    let e = apply_from("DeleteResourcePolicy", ACCOUNT, "team.c", target.clone());
    let out = w.invoke(&e, Duration::from_secs(30)).await.unwrap();
    assert_eq!(out["Status"], "DELETED", "{out}");
    assert_eq!(
        live_sids(&w, &target).await,
        all,
        "a stranger's Delete removes nothing"
    );
    // Nor on a target the ledger does not know, holding a hand-written policy.
    let hand_only = json!({"PolicyName": "seq7hand"});
    hand_put(&w, &hand_only, &doc(&[st("Hand", a)])).await;
    let e = apply_from("DeleteResourcePolicy", ACCOUNT, "team.a", hand_only.clone());
    w.invoke(&e, Duration::from_secs(30)).await.unwrap();
    assert_eq!(live_sids(&w, &hand_only).await, ["Hand"]);

    // Valid: A1 (its own) and B (team.b's): only A1 goes.
    let e = apply_from(
        "DeleteResourcePolicy",
        ACCOUNT,
        "team.a",
        with(&target, "Statements", json!([st("A1", a), st("B", a)])),
    );
    assert_eq!(
        w.invoke(&e, Duration::from_secs(30)).await.unwrap()["Status"],
        "DELETED"
    );
    assert_eq!(live_sids(&w, &target).await, ["Hand", "A2", "B"]);
    let ra = record(&w, &id_t, &sender_owner(ACCOUNT, "team.a")).await;
    assert!(ra.present && ra.holding.sids() == ["A2"], "{ra:?}");
    let rb = record(&w, &id_t, &sender_owner(ACCOUNT, "team.b")).await;
    assert!(rb.present && rb.holding.sids() == ["B"], "{rb:?}");
}

// ---------------------------------------------------------------------------------
// 8
// ---------------------------------------------------------------------------------

/// Sequence 8: owners from before the ledger existed (their grants are on the target,
/// the ledger knows nothing of them) delete while a ledger-known owner holds statements
/// there: nobody's statements are wiped, nothing fails.
#[tokio::test]
async fn owners_unknown_to_the_ledger_delete_without_wiping_another_owners_statements() {
    let w = plain().await;
    let target = json!({"PolicyName": "seq8"});
    let a = "xray:PutTraceSegments";
    // A pre-ledger stack's whole policy, and a pre-ledger stack's statement, on one target.
    let legacy_whole = doc(&[st("Whole", a)]);
    hand_put(&w, &target, &doc(&[st("Whole", a), st("Old", a)])).await;
    let known = with(&target, "Statements", json!([st("New", a)]));
    let known_id = ok(&create(&w, "new", "Grant", &known).await);
    assert_eq!(live_sids(&w, &target).await, ["Whole", "Old", "New"]);

    // The pre-ledger whole-policy owner's Delete carries Policy.
    let whole_props = with(&target, "Policy", legacy_whole.clone());
    let out = delete(
        &w,
        "legacy",
        "WholePolicy",
        &whole_props,
        "xray:us-east-1:policy/seq8",
    )
    .await;
    ok(&out);
    let sids = live_sids(&w, &target).await;
    assert!(
        sids.contains(&"New".to_string()),
        "the known owner keeps its statement: {sids:?}"
    );
    assert!(
        sids.contains(&"Old".to_string()),
        "so does the other pre-ledger owner: {sids:?}"
    );

    // The pre-ledger statements owner's Delete names its Sid (and one it does not hold).
    let old_props = with(&target, "Statements", json!([st("Old", a), st("New", a)]));
    ok(&delete(
        &w,
        "legacy",
        "OldGrant",
        &old_props,
        "xray:us-east-1:policy/seq8",
    )
    .await);
    let sids = live_sids(&w, &target).await;
    assert!(
        !sids.contains(&"Old".to_string()),
        "its own Sid goes: {sids:?}"
    );
    assert!(
        sids.contains(&"New".to_string()),
        "never another owner's: {sids:?}"
    );
    let id_t = target_of(&target).display_id();
    let r = record(&w, &id_t, &cfn_owner("new", "Grant")).await;
    assert!(r.present && r.holding.sids() == ["New"], "{r:?}");

    // The known owner goes on: its Update completes.
    let known2 = with(
        &target,
        "Statements",
        json!([st("New", "xray:GetSamplingRules")]),
    );
    ok(&update(&w, "new", "Grant", &known2, &known_id, &known).await);
    assert!(statements_of(&live(&w, &target).await.unwrap())
        .contains(&st("New", "xray:GetSamplingRules")));

    // Alone, with its document still in place, a pre-ledger whole owner removes it.
    let solo = json!({"PolicyName": "seq8solo"});
    let solo_props = with(&solo, "Policy", legacy_whole.clone());
    hand_put(&w, &solo, &legacy_whole).await;
    ok(&delete(
        &w,
        "legacy",
        "Solo",
        &solo_props,
        "xray:us-east-1:policy/seq8solo",
    )
    .await);
    assert_eq!(live(&w, &solo).await, None);
}

/// Sequence 8, continued: after a pre-ledger whole-policy owner's Delete was adopted
/// (recorded gone) on a target in statements mode, the statement owner's own Delete
/// removes its statement: nothing is left in force owned by nobody.
#[tokio::test]
async fn a_statement_owners_delete_after_an_adopted_whole_owner_removes_its_statement() {
    let w = plain().await;
    let target = json!({"PolicyName": "seq8b"});
    let a = "xray:PutTraceSegments";
    let legacy_whole = doc(&[st("Whole", a)]);
    hand_put(&w, &target, &legacy_whole).await;
    let known = with(&target, "Statements", json!([st("New", a)]));
    let known_id = ok(&create(&w, "new", "Grant", &known).await);
    assert_eq!(live_sids(&w, &target).await, ["Whole", "New"]);
    let whole_props = with(&target, "Policy", legacy_whole.clone());
    ok(&delete(
        &w,
        "legacy",
        "WholePolicy",
        &whole_props,
        "xray:us-east-1:policy/seq8b",
    )
    .await);
    assert_eq!(live_sids(&w, &target).await, ["Whole", "New"]);

    ok(&delete(&w, "new", "Grant", &known, &known_id).await);
    let id_t = target_of(&target).display_id();
    let r = record(&w, &id_t, &cfn_owner("new", "Grant")).await;
    assert!(!r.present && r.settled, "{r:?}");
    let left = live(&w, &target).await;
    assert!(
        !left
            .as_ref()
            .is_some_and(|d| sids_of(d).contains(&"New".to_string())),
        "the gone owner's statement is removed: live {left:?}, ledger {:?}",
        row(&w, &id_t).await
    );
    // Nor does a repair or the reconcile leave it.
    w.invoke(
        &xray_trail("seq8b", "PutResourcePolicy"),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    w.invoke(&scheduled(), Duration::from_secs(30))
        .await
        .unwrap();
    assert!(!live_sids(&w, &target).await.contains(&"New".to_string()));
}

// ---------------------------------------------------------------------------------
// 9
// ---------------------------------------------------------------------------------

/// Sequence 9: with the ledger unreachable, a stack's Delete still answers SUCCESS and
/// hands an `OwnerGone` event to the function's asynchronous queue; replayed once the
/// ledger is back, it records the owner gone and removes the grant.
#[tokio::test]
async fn an_unreachable_ledger_never_fails_a_delete_and_the_owner_gone_event_finishes_it() {
    let w = build(
        Build {
            microburst: Some(json!([])),
            ..Build::default()
        },
        |_| {},
    )
    .await;
    let props = json!({"PolicyName": "seq9", "Policy": doc(&[st("Grant", "xray:PutTraceSegments")]), "ServiceTimeout": 5});
    let id = ok(&create(&w, "app", "Tracing", &props).await);
    let id_t = "xray:us-east-1:policy/seq9";
    assert!(record(&w, id_t, &cfn_owner("app", "Tracing")).await.present);

    // The ledger's table cannot be read or written.
    let mb = w.proxy.as_ref().unwrap();
    let rules = json!([
        {"service": "dynamodb", "operation": "UpdateItem", "error": {"code": "AccessDeniedException", "status": 400}},
        {"service": "dynamodb", "operation": "GetItem", "error": {"code": "AccessDeniedException", "status": 400}},
    ]);
    let set = resource_policy_provider::response_client()
        .post(format!("{}/_microburst/rules", mb.url))
        .body(rules.to_string())
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success(), "{:?}", set.text().await);
    let started = std::time::Instant::now();
    let out = delete(&w, "app", "Tracing", &props, &id).await;
    assert_eq!(ok(&out), id, "the Delete completes: {out}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        mb.faulted("dynamodb").await >= 1,
        "the ledger really was unreachable"
    );
    let handed: Vec<Value> = w
        .invoked
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["detail-type"] == "OwnerGone")
        .cloned()
        .collect();
    assert_eq!(handed.len(), 1, "one OwnerGone event: {handed:?}");
    let gone = handed[0].clone();
    assert_eq!(gone["detail"]["Owner"], cfn_owner("app", "Tracing"));

    // The ledger is back: Lambda's asynchronous queue delivers the event.
    let cleared = resource_policy_provider::response_client()
        .post(format!("{}/_microburst/rules", mb.url))
        .body("[]")
        .send()
        .await
        .unwrap();
    assert!(cleared.status().is_success());
    let out = w.invoke(&gone, Duration::from_secs(30)).await.unwrap();
    assert_eq!(out["Status"], "DELETED", "{out}");
    assert_eq!(live(&w, &props).await, None, "the grant is removed");
    let r = record(&w, id_t, &cfn_owner("app", "Tracing")).await;
    assert!(!r.present && r.settled, "{r:?}");
    // A repair afterwards does not restore it.
    let out = w
        .invoke(
            &xray_trail("seq9", "PutResourcePolicy"),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_ne!(out["Status"], "REPAIRED", "{out}");
    assert_eq!(live(&w, &props).await, None);
}

/// Microburst answers AccessDenied to every ledger read and write (`[]`: back).
async fn ledger_reachable(w: &World, reachable: bool) {
    let rules = if reachable {
        json!([])
    } else {
        json!([
            {"service": "dynamodb", "operation": "UpdateItem", "error": {"code": "AccessDeniedException", "status": 400}},
            {"service": "dynamodb", "operation": "GetItem", "error": {"code": "AccessDeniedException", "status": 400}},
        ])
    };
    let mb = w.proxy.as_ref().unwrap();
    let set = resource_policy_provider::response_client()
        .post(format!("{}/_microburst/rules", mb.url))
        .body(rules.to_string())
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success(), "{:?}", set.text().await);
}

/// The events the function handed to its own asynchronous queue, of this detail-type.
fn handed(w: &World, detail_type: &str) -> Vec<Value> {
    w.invoked
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["detail-type"] == detail_type)
        .cloned()
        .collect()
}

/// Rollbacks never get stuck: the ledger becomes unreachable during an update. The
/// forward Update fails (nothing recorded, nothing written); the rollback Update of a
/// stack that is rolling back answers SUCCESS and hands the old properties to the
/// asynchronous queue, which records and writes them once the ledger is back. A late
/// delivery after the stack's Delete is superseded: the removed grant stays removed.
#[tokio::test]
async fn an_unreachable_ledger_never_fails_a_rollback_update_and_the_queue_finishes_it() {
    let w = build(
        Build {
            microburst: Some(json!([])),
            ..Build::default()
        },
        |_| {},
    )
    .await;
    let v1 = json!({"PolicyName": "seq-rb", "Policy": doc(&[st("Grant", "xray:PutTraceSegments")]), "ServiceTimeout": 5});
    let v2 = json!({"PolicyName": "seq-rb", "Policy": doc(&[st("Grant", "xray:*")]), "ServiceTimeout": 5});
    let target_id = "xray:us-east-1:policy/seq-rb";
    let owner = cfn_owner("rolling-app", "Tracing");
    let id = ok(&create(&w, "rolling-app", "Tracing", &v1).await);
    // Another resource's update failed; this one had updated to v2.
    assert_eq!(
        ok(&update(&w, "rolling-app", "Tracing", &v2, &id, &v1).await),
        id
    );
    assert!(same_document(&live(&w, &v2).await.unwrap(), &v2["Policy"]));

    ledger_reachable(&w, false).await;
    // A forward Update (its stack is not rolling back) fails: nothing is half done.
    let out = update(&w, "app", "Tracing", &v2, &id, &v1).await;
    assert_eq!(out["Status"], "FAILED", "{out}");
    assert!(
        handed(&w, "RollbackUpdate").is_empty(),
        "a forward update is not handed off"
    );
    // The rollback Update back to v1 completes.
    let out = update(&w, "rolling-app", "Tracing", &v1, &id, &v2).await;
    assert_eq!(ok(&out), id, "the rollback completes: {out}");
    let events = handed(&w, "RollbackUpdate");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail"]["Owner"], owner);

    // The ledger is back: Lambda's asynchronous queue delivers the event.
    ledger_reachable(&w, true).await;
    let out = w.invoke(&events[0], Duration::from_secs(30)).await.unwrap();
    assert_eq!(out["Status"], "APPLIED", "{out}");
    assert!(same_document(&live(&w, &v1).await.unwrap(), &v1["Policy"]));
    let r = record(&w, target_id, &owner).await;
    let held = matches!(&r.holding, Holding::Policy(p) if same_document(p, &v1["Policy"]));
    assert!(r.present && r.settled && held, "{r:?}");

    // The stack is deleted; a second delivery of the rollback comes after: superseded.
    ok(&delete(&w, "rolling-app", "Tracing", &v1, &id).await);
    assert_eq!(live(&w, &v1).await, None);
    let out = w.invoke(&events[0], Duration::from_secs(30)).await.unwrap();
    assert_eq!(out["Status"], "SUPERSEDED", "{out}");
    assert_eq!(live(&w, &v1).await, None, "the removed grant stays removed");
}

/// A rollback handed off while the ledger was down, and the stack's Delete handed off
/// too: Lambda may deliver them in either order. Ordered by when they were asked, the
/// Delete wins both ways.
#[tokio::test]
async fn a_rollback_and_a_delete_handed_off_in_either_order_end_removed() {
    for delete_first in [false, true] {
        let w = build(
            Build {
                microburst: Some(json!([])),
                ..Build::default()
            },
            |_| {},
        )
        .await;
        let name = format!("seq-rb-{delete_first}");
        let v1 = json!({"PolicyName": name, "Policy": doc(&[st("Grant", "xray:PutTraceSegments")]), "ServiceTimeout": 5});
        let v2 = json!({"PolicyName": name, "Policy": doc(&[st("Grant", "xray:*")]), "ServiceTimeout": 5});
        let id = ok(&create(&w, "rolling-app", "Tracing", &v1).await);
        ok(&update(&w, "rolling-app", "Tracing", &v2, &id, &v1).await);
        ledger_reachable(&w, false).await;
        ok(&update(&w, "rolling-app", "Tracing", &v1, &id, &v2).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
        ok(&delete(&w, "rolling-app", "Tracing", &v1, &id).await);
        let rollback = handed(&w, "RollbackUpdate");
        let gone = handed(&w, "OwnerGone");
        assert_eq!(
            (rollback.len(), gone.len()),
            (1, 1),
            "{rollback:?} {gone:?}"
        );
        ledger_reachable(&w, true).await;
        let (first, second) = if delete_first {
            (&gone[0], &rollback[0])
        } else {
            (&rollback[0], &gone[0])
        };
        let a = w.invoke(first, Duration::from_secs(30)).await.unwrap();
        let b = w.invoke(second, Duration::from_secs(30)).await.unwrap();
        assert_eq!(
            live(&w, &v1).await,
            None,
            "delete_first={delete_first}: {a} {b}"
        );
        let r = record(
            &w,
            &format!("xray:us-east-1:policy/{name}"),
            &cfn_owner("rolling-app", "Tracing"),
        )
        .await;
        assert!(!r.present, "delete_first={delete_first}: {r:?}");
    }
}

/// Sequence 9, late delivery: the `OwnerGone` event of a Delete made while the ledger
/// was unreachable is delivered by Lambda's retries only after the same resource was
/// created again (a later stack update re-adds it). The stale removal must not take
/// away the grant the resource holds now.
#[tokio::test]
async fn a_late_owner_gone_event_does_not_remove_the_grant_of_a_resource_created_since() {
    let w = build(
        Build {
            microburst: Some(json!([])),
            ..Build::default()
        },
        |_| {},
    )
    .await;
    let props = json!({"PolicyName": "seq9late", "Policy": doc(&[st("Grant", "xray:PutTraceSegments")]), "ServiceTimeout": 5});
    let id = ok(&create(&w, "app", "Tracing", &props).await);
    let mb = w.proxy.as_ref().unwrap();
    let set_rules = |rules: Value| {
        let url = format!("{}/_microburst/rules", mb.url);
        async move {
            let r = resource_policy_provider::response_client()
                .post(url)
                .body(rules.to_string())
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
    };
    set_rules(json!([
        {"service": "dynamodb", "operation": "UpdateItem", "error": {"code": "AccessDeniedException", "status": 400}},
        {"service": "dynamodb", "operation": "GetItem", "error": {"code": "AccessDeniedException", "status": 400}},
    ]))
    .await;
    ok(&delete(&w, "app", "Tracing", &props, &id).await);
    let gone = w
        .invoked
        .lock()
        .unwrap()
        .iter()
        .find(|e| e["detail-type"] == "OwnerGone")
        .cloned()
        .expect("an OwnerGone event");
    set_rules(json!([])).await;
    // Its first delivery fails (the ledger is still out, say); meanwhile the stack's
    // next update adds the resource back.
    let props2 =
        json!({"PolicyName": "seq9late", "Policy": doc(&[st("Grant", "xray:GetSamplingRules")])});
    ok(&create(&w, "app", "Tracing", &props2).await);
    assert_eq!(live(&w, &props2).await, Some(props2["Policy"].clone()));
    // Lambda's retry delivers the old removal.
    let _ = w.invoke(&gone, Duration::from_secs(30)).await;
    let r = record(
        &w,
        "xray:us-east-1:policy/seq9late",
        &cfn_owner("app", "Tracing"),
    )
    .await;
    assert!(
        r.present,
        "the re-created resource is still an owner: {r:?}"
    );
    assert_eq!(
        live(&w, &props2).await,
        Some(props2["Policy"].clone()),
        "its grant stays"
    );
}

/// Sequence 9, throttled: the ledger throttles its writes for a while; an Update (as a
/// rollback sends it) and a Delete still complete inside their budget, and the Delete
/// removes the grant itself (nothing is handed off).
#[tokio::test]
async fn a_throttled_ledger_delays_a_rollback_update_and_a_delete_but_fails_neither() {
    let w = build(
        Build {
            microburst: Some(json!([])),
            ..Build::default()
        },
        |_| {},
    )
    .await;
    let target = json!({"PolicyName": "seq9t"});
    let v1 = with(
        &target,
        "Statements",
        json!([st("Mine", "xray:PutTraceSegments")]),
    );
    let v2 = with(&target, "Statements", json!([st("Mine", "xray:*")]));
    let id = ok(&create(&w, "app", "Grant", &v1).await);
    let mb = w.proxy.as_ref().unwrap();
    let throttle = || async {
        let rules = json!([{"service": "dynamodb", "operation": "UpdateItem", "times": 3,
            "error": {"code": "ProvisionedThroughputExceededException", "status": 400}}]);
        let r = resource_policy_provider::response_client()
            .post(format!("{}/_microburst/rules", mb.url))
            .body(rules.to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    };
    throttle().await;
    // CloudFormation's rollback of an update to v2: back to v1, Old = v2.
    ok(&update(&w, "app", "Grant", &v1, &id, &v2).await);
    assert!(
        mb.faulted("dynamodb").await >= 3,
        "the ledger was throttled"
    );
    assert_eq!(
        live(&w, &target).await.map(|d| statements_of(&d)),
        Some(vec![st("Mine", "xray:PutTraceSegments")])
    );
    throttle().await;
    ok(&delete(&w, "app", "Grant", &v1, &id).await);
    assert!(mb.faulted("dynamodb").await >= 6);
    assert_eq!(live(&w, &target).await, None);
    let r = record(
        &w,
        "xray:us-east-1:policy/seq9t",
        &cfn_owner("app", "Grant"),
    )
    .await;
    assert!(!r.present && r.settled, "{r:?}");
    assert!(
        !w.invoked
            .lock()
            .unwrap()
            .iter()
            .any(|e| e["detail-type"] == "OwnerGone"),
        "nothing handed off"
    );
}

// ---------------------------------------------------------------------------------
// 10
// ---------------------------------------------------------------------------------

/// Sequence 10: a second owner asking for a Sid the first holds, with the very same
/// statement, is refused naming the first; the first's grant and record are untouched.
#[tokio::test]
async fn the_same_sid_with_the_same_body_is_refused_to_a_second_owner_naming_the_first() {
    let w = plain().await;
    let target = json!({"PolicyName": "seq10"});
    let s = st("Read", "xray:BatchGetTraces");
    let props = with(&target, "Statements", json!([s.clone()]));
    let first = ok(&create(&w, "first", "Grant", &props).await);
    let second = create(&w, "second", "Grant", &props).await;
    assert_eq!(second["Status"], "FAILED", "{second}");
    let why = second["Reason"].as_str().unwrap();
    assert!(why.contains("\"Read\"") && why.contains("first"), "{why}");
    let id_t = target_of(&target).display_id();
    let v = row(&w, &id_t).await.unwrap();
    assert!(
        v.owners
            .get(&cfn_owner("second", "Grant"))
            .is_none_or(|r| !r.present),
        "the refused record is undone: {v:?}"
    );
    // Its rollback Delete (a marker id) changes nothing.
    let marker = second["PhysicalResourceId"].as_str().unwrap().to_string();
    ok(&delete(&w, "second", "Grant", &props, &marker).await);
    assert_eq!(
        live(&w, &target).await.map(|d| statements_of(&d)),
        Some(vec![s.clone()])
    );
    // The first owner's narrowing is its own, and a repair keeps it narrow.
    let narrow = st("Read", "xray:GetTraceSummaries");
    let narrowed = with(&target, "Statements", json!([narrow.clone()]));
    ok(&update(&w, "first", "Grant", &narrowed, &first, &props).await);
    hand_put(&w, &target, &doc(std::slice::from_ref(&s))).await;
    let out = w
        .invoke(
            &xray_trail("seq10", "PutResourcePolicy"),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(out["Status"], "REPAIRED", "{out}");
    assert_eq!(
        live(&w, &target).await.map(|d| statements_of(&d)),
        Some(vec![narrow])
    );
    ok(&delete(&w, "first", "Grant", &narrowed, &first).await);
    assert_eq!(live(&w, &target).await, None);
}

/// Sequence 10, the documented way to move a resource to a new logical id
/// (docs/deploy.md: "CloudFormation creates the new resource (which takes over the
/// policy, recorded in the ledger under the new owner), then deletes the old one, which
/// removes only what the old owner held").
#[tokio::test]
async fn a_new_logical_id_takes_over_the_policy_and_the_old_ones_delete_keeps_it() {
    let w = plain().await;
    let props =
        json!({"PolicyName": "seq10m", "Policy": doc(&[st("Grant", "xray:PutTraceSegments")])});
    let old_id = ok(&create(&w, "app", "TracingPolicy", &props).await);
    let new = create(&w, "app", "TracingPolicyV2", &props).await;
    ok(&new);
    ok(&delete(&w, "app", "TracingPolicy", &props, &old_id).await);
    assert_eq!(live(&w, &props).await, Some(props["Policy"].clone()));
    let id_t = "xray:us-east-1:policy/seq10m";
    assert!(
        record(&w, id_t, &cfn_owner("app", "TracingPolicyV2"))
            .await
            .present
    );
    assert!(
        !record(&w, id_t, &cfn_owner("app", "TracingPolicy"))
            .await
            .present
    );
}

// ---------------------------------------------------------------------------------
// 11
// ---------------------------------------------------------------------------------

/// Sequence 11: two deployments of the function (two ledgers, two roles) own one target
/// with different documents. Each one's writes reach the other as CloudTrail events;
/// the repairs stop after REPAIR_LOOP_LIMIT with LOOP_STOPPED naming the other writer.
#[tokio::test]
async fn two_deployments_fighting_over_one_target_stop_repairing_and_name_each_other() {
    const LIMIT: u32 = 3;
    const ROLE2: &str = "arn:aws:iam::123456789012:role/second-provider-role";
    let w = build(Build::default(), |s| s.repair_loop_limit = LIMIT).await;
    let mut s2 = settings(&w.rec);
    s2.ledger_table = Some("second-ledger".into());
    s2.function_role_arn = Some(ROLE2.into());
    s2.repair_loop_limit = LIMIT;
    let (app2, _invoked2, _rule2) = app_at(&w._moto.url, &w.server.url, s2).await;
    create_table(
        &app2.clients.dynamodb("us-east-1"),
        "second-ledger",
        "target",
    )
    .await;

    let one = json!({"PolicyName": "seq11", "Policy": doc(&[st("One", "xray:PutTraceSegments")])});
    // The second deployment takes over what the first wrote (its ledger does not know
    // it): without TakeOver it would be refused, which is the guardrail, not the fight.
    let two = json!({"PolicyName": "seq11", "Policy": doc(&[st("Two", "xray:GetSamplingRules")]), "TakeOver": "true"});
    ok(&cfn_via(&w, &w.app, "first", "Tracing", "Create", &one, None, None).await);
    ok(&cfn_via(&w, &app2, "second", "Tracing", "Create", &two, None, None).await);
    let ev = |caller: &str| xray_trail_by("seq11", caller);
    let deployments = [(&w.app, ROLE2), (&app2, super::ROLE)];
    // Deployment 2 wrote last: deployment 1 hears it (caller: role 2), repairs, and
    // deployment 2 hears that (caller: role 1), and so on, until one of them stops.
    let mut repaired = [0u32, 0u32];
    let mut stopped = None;
    'fight: for _ in 0..=LIMIT {
        for (i, (app, other)) in deployments.into_iter().enumerate() {
            let out = handle(
                app.clone(),
                &w.http,
                &ev(other).to_string(),
                deadline_in(Duration::from_secs(30)),
            )
            .await
            .unwrap();
            match out["Status"].as_str().unwrap() {
                "REPAIRED" => repaired[i] += 1,
                "LOOP_STOPPED" => {
                    stopped = Some((i, out));
                    break 'fight;
                }
                s => panic!("deployment {}: {s}: {out} after {repaired:?}", i + 1),
            }
        }
    }
    let (i, out) = stopped.unwrap_or_else(|| panic!("the fight never stopped: {repaired:?}"));
    assert_eq!(
        i, 0,
        "the first to repair is the first to reach the limit: {out}"
    );
    assert_eq!(repaired, [LIMIT, LIMIT], "{out}");
    let why = out["Reason"].as_str().unwrap();
    assert!(why.contains(ROLE2), "names the other writer: {why}");
    // Deployment 2's document stays; nobody writes any more.
    let puts = w.server.calls("xray", "PutResourcePolicy").await;
    let out = handle(
        app2.clone(),
        &w.http,
        &ev(super::ROLE).to_string(),
        deadline_in(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    assert_eq!(out["Status"], "IN_SYNC", "{out}");
    let out = w.invoke(&ev(ROLE2), Duration::from_secs(30)).await.unwrap();
    assert_eq!(out["Status"], "LOOP_STOPPED", "it stays stopped: {out}");
    assert_eq!(w.server.calls("xray", "PutResourcePolicy").await, puts);
    assert_eq!(live(&w, &two).await, Some(two["Policy"].clone()));
    let v = row(&w, "xray:us-east-1:policy/seq11").await.unwrap();
    assert_eq!(v.repairs.len() as u32, LIMIT, "{v:?}");
}

fn xray_trail_by(name: &str, caller: &str) -> Value {
    trail_for(
        "xray.amazonaws.com",
        "PutResourcePolicy",
        json!({"policyName": name}),
        caller,
    )
}

// ---------------------------------------------------------------------------------
// 12
// ---------------------------------------------------------------------------------

/// Sequence 12: an apply request's owner is its account and source: two sources in one
/// account, and one source in two accounts, are four owners that never replace or
/// remove each other's statements.
#[tokio::test]
async fn apply_request_owners_are_account_and_source() {
    let w = build(Build::default(), |s| {
        s.apply_allowed_accounts = Some(vec![ACCOUNT.into(), OTHER_ACCOUNT.into()])
    })
    .await;
    let target = json!({"PolicyName": "seq12"});
    let a = "xray:PutTraceSegments";
    let put = |account: &str, source: &str, sids: &[&str]| {
        let list: Vec<Value> = sids.iter().map(|s| st(s, a)).collect();
        apply_from(
            "PutResourcePolicy",
            account,
            source,
            with(&target, "Statements", json!(list)),
        )
    };
    for (account, source, sid) in [
        (ACCOUNT, "team.a", "A"),
        (ACCOUNT, "team.b", "B"),
        (OTHER_ACCOUNT, "team.a", "C"),
    ] {
        let out = w
            .invoke(&put(account, source, &[sid]), Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(out["Status"], "APPLIED", "{out}");
        assert_eq!(out["Owner"], sender_owner(account, source));
    }
    assert_eq!(live_sids(&w, &target).await, ["A", "B", "C"]);
    // team.a in ACCOUNT replaces only its own statement.
    w.invoke(&put(ACCOUNT, "team.a", &["A2"]), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(live_sids(&w, &target).await, ["B", "C", "A2"]);
    // team.a in OTHER_ACCOUNT deletes only its own.
    let del = apply_from(
        "DeleteResourcePolicy",
        OTHER_ACCOUNT,
        "team.a",
        with(&target, "Statements", json!([st("C", a), st("A2", a)])),
    );
    assert_eq!(
        w.invoke(&del, Duration::from_secs(30)).await.unwrap()["Status"],
        "DELETED"
    );
    assert_eq!(live_sids(&w, &target).await, ["B", "A2"]);
    // The same source from another account cannot take a Sid it does not hold.
    let e = w
        .invoke(
            &put(OTHER_ACCOUNT, "team.a", &["B"]),
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("\"B\""), "{e}");
    let id_t = target_of(&target).display_id();
    let v = row(&w, &id_t).await.unwrap();
    let present: Vec<(String, Vec<String>)> = v
        .present()
        .into_iter()
        .map(|(k, r)| (k.clone(), r.holding.sids()))
        .collect();
    let mut present = present;
    present.sort();
    assert_eq!(
        present,
        vec![
            (sender_owner(ACCOUNT, "team.a"), vec!["A2".to_string()]),
            (sender_owner(ACCOUNT, "team.b"), vec!["B".to_string()]),
        ]
    );
    // Whole policies: the same source in two accounts are two owners, one at a time.
    let whole = |account: &str| {
        apply_from(
            "PutResourcePolicy",
            account,
            "team.a",
            json!({"PolicyName": "seq12w", "Policy": doc(&[st("W", a)])}),
        )
    };
    w.invoke(&whole(ACCOUNT), Duration::from_secs(30))
        .await
        .unwrap();
    let e = w
        .invoke(&whole(OTHER_ACCOUNT), Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(e.to_string().contains(ACCOUNT), "{e}");
}

// ---------------------------------------------------------------------------------
// 13
// ---------------------------------------------------------------------------------

/// Sequence 13: a Managed Prometheus policy too big for a ledger item is refused before
/// any write, alone or together with another owner's statements.
#[tokio::test]
async fn a_policy_too_big_for_the_ledger_is_refused_before_any_write() {
    let w = plain().await;
    let ws = "arn:aws:aps:us-east-1:123456789012:workspace/ws-seq13";
    w.server
        .control(
            reqwest::Method::POST,
            "workspaces",
            Some(json!({"workspaceId": "ws-seq13"})),
        )
        .await;
    // Statements of about 2.6 KB (few Sids: the answer's Data lists them).
    let big = |prefix: &str, n: usize| -> Vec<Value> {
        let teams: Vec<String> = (0..100)
            .map(|t| format!("team-{t:03}-metrics-readers"))
            .collect();
        (0..n)
            .map(|i| {
                json!({"Sid": format!("{prefix}{i:03}"), "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                    "Action": ["aps:QueryMetrics", "aps:GetLabels", "aps:GetSeries"],
                    "Resource": ws,
                    "Condition": {"StringEquals": {"aws:PrincipalTag/team": teams}}})
            })
            .collect()
    };
    let target = json!({"ResourceArn": ws});
    let puts = || async { w.server.calls("aps", "PutResourcePolicy").await };
    let before = puts().await;

    // Alone: about 520 KB.
    let huge = with(&target, "Policy", doc(&big("H", 200)));
    let out = create(&w, "big", "Policy", &huge).await;
    assert_eq!(out["Status"], "FAILED", "{out}");
    assert!(out["Reason"].as_str().unwrap().contains("400 KB"), "{out}");
    assert_eq!(puts().await, before, "nothing written");
    assert!(row(&w, ws).await.is_none_or(|v| v.present().is_empty()));

    // Two owners of about 230 KB each: the second does not fit beside the first.
    let first = with(&target, "Statements", json!(big("F", 90)));
    ok(&create(&w, "first", "Grant", &first).await);
    let written = puts().await;
    let second = with(&target, "Statements", json!(big("S", 90)));
    let out = create(&w, "second", "Grant", &second).await;
    assert_eq!(out["Status"], "FAILED", "{out}");
    assert!(out["Reason"].as_str().unwrap().contains("400 KB"), "{out}");
    assert_eq!(puts().await, written, "nothing written for the second");
    let v = row(&w, ws).await.unwrap();
    assert!(
        v.owners
            .get(&cfn_owner("second", "Grant"))
            .is_none_or(|r| !r.present),
        "the refused record is undone"
    );
    assert!(v.owners[&cfn_owner("first", "Grant")].present);
    assert_eq!(live_sids(&w, &target).await.len(), 90);

    // The first owner growing past the limit: refused, its grant and record as they were.
    let first_id = ws.to_string();
    let grown = with(&target, "Statements", json!(big("F", 200)));
    let out = update(&w, "first", "Grant", &grown, &first_id, &first).await;
    assert_eq!(out["Status"], "FAILED", "{out}");
    assert!(out["Reason"].as_str().unwrap().contains("400 KB"), "{out}");
    assert_eq!(puts().await, written, "nothing written for the update");
    assert_eq!(live_sids(&w, &target).await.len(), 90);
    let r = record(&w, ws, &cfn_owner("first", "Grant")).await;
    assert!(
        r.present && r.holding.sids().len() == 90,
        "the record is the old one"
    );
}

// ---------------------------------------------------------------------------------
// 14
// ---------------------------------------------------------------------------------

/// Sequence 14: the reconcile counts rows whose owners are all gone as nothing failed,
/// and its totals add up.
#[tokio::test]
async fn the_reconcile_counts_rows_without_a_present_owner_as_not_failed_and_totals_add_up() {
    let w = plain().await;
    let a = "xray:PutTraceSegments";
    // In sync.
    ok(&create(
        &w,
        "s1",
        "P",
        &json!({"PolicyName": "in-sync", "Policy": doc(&[st("S", a)])}),
    )
    .await);
    // Drifted.
    let drifted = json!({"PolicyName": "drifted", "Policy": doc(&[st("D", a)])});
    ok(&create(&w, "s2", "P", &drifted).await);
    hand_put(&w, &drifted, &doc(&[st("D", "xray:*")])).await;
    // Gone: the owner deleted, the row keeps its gone record.
    let gone = json!({"PolicyName": "gone", "Policy": doc(&[st("G", a)])});
    let id = ok(&create(&w, "s3", "P", &gone).await);
    ok(&delete(&w, "s3", "P", &gone, &id).await);
    let v = row(&w, "xray:us-east-1:policy/gone").await.unwrap();
    assert!(v.present().is_empty() && !v.owners.is_empty(), "{v:?}");
    // A row with no owner at all (an item of an older layout, emptied).
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    w.app
        .clients
        .dynamodb("us-east-1")
        .put_item()
        .table_name(TABLE)
        .item("target", Av::S("xray:us-east-1:policy/ownerless".into()))
        .item("service_key", Av::S("xray".into()))
        .item("change_version", Av::N("7".into()))
        .send()
        .await
        .unwrap();

    for round in 0..2 {
        let out = w
            .invoke(&scheduled(), Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(out["Status"], "DONE", "{out}");
        let t = &out["Totals"];
        assert_eq!(t["Failed"], 0, "round {round}: {out}");
        assert_eq!(t["Repaired"], if round == 0 { 1 } else { 0 }, "{out}");
        let n = |k: &str| t[k].as_u64().unwrap();
        assert_eq!(
            n("InDrift"),
            n("Repaired") + n("Failed") + n("Detected") + n("LoopsStopped"),
            "{out}"
        );
        // The two owned targets and the gone owner's row (checked: in sync once its
        // removal is done); the ownerless row counts nothing.
        assert_eq!(n("Checked"), 3, "{out}");
    }
    assert_eq!(live(&w, &drifted).await, Some(doc(&[st("D", a)])));
    assert_eq!(live(&w, &gone).await, None);
}

// ---------------------------------------------------------------------------------
// 15
// ---------------------------------------------------------------------------------

/// Sequence 15: eight Statements owners created together on one DynamoDB table behind
/// the update lock (3 s here; 15 s in the benchmark) all succeed, with at most three
/// writes reaching the service.
#[tokio::test]
async fn eight_owners_on_one_table_under_the_update_lock_all_succeed_in_three_writes() {
    let w = Arc::new(ddb_world(3000).await);
    let target = json!({"ResourceArn": TABLE_ARN});
    let started = std::time::Instant::now();
    let mut runs = tokio::task::JoinSet::new();
    for i in 0..8 {
        let w = w.clone();
        let props = with(
            &target,
            "Statements",
            json!([st(&format!("S{i}"), "dynamodb:GetItem")]),
        );
        runs.spawn(async move { create(&w, &format!("stack-{i}"), "Grant", &props).await });
    }
    while let Some(done) = runs.join_next().await {
        let body = done.unwrap();
        assert_eq!(body["Status"], "SUCCESS", "{body}");
    }
    let took = started.elapsed();
    let mut sids = live_sids(&w, &target).await;
    sids.sort();
    let want: Vec<String> = (0..8).map(|i| format!("S{i}")).collect();
    assert_eq!(sids, want);
    let writes = proxy(&w).proxy_count(TABLE_ARN, "writes").await;
    assert!(
        writes <= 3,
        "at most three writes reach DynamoDB: {writes} ({:?})",
        proxy(&w).proxy(reqwest::Method::GET, "log", None).await
    );
    assert!(took < Duration::from_secs(30), "{took:?}");
    let v = row(&w, TABLE_ARN).await.unwrap();
    assert_eq!(v.present().len(), 8);
    assert!(v.owners.values().all(|r| r.settled), "{v:?}");
}

/// The contract's last word on removal: a repair never restores a grant whose stack
/// resource no longer exists (its stack deleted with the resource retained, so no Delete
/// ever came). An owner whose stack resource still exists is restored as before.
#[tokio::test]
async fn a_repair_does_not_restore_a_stack_resource_that_no_longer_exists() {
    let w = plain().await;
    let live_stack = "arn:aws:cloudformation:us-east-1:123456789012:stack/live/1111";
    let props = |name: &str, sid: &str| json!({"PolicyName": name, "Policy": doc(&[st(sid, "xray:PutTraceSegments")])});
    // Owner 1: the live stack's resource. Owner 2: a stack that does not exist any more.
    for (stack_id, logical, name) in [
        (live_stack, "Kept", "seq-stack-kept"),
        (
            "arn:aws:cloudformation:us-east-1:123456789012:stack/deleted-retained/0000",
            "Old",
            "seq-stack-gone",
        ),
    ] {
        let path = format!("stack-{name}");
        let mut e = cfn_event(
            &w,
            &path,
            "x",
            logical,
            "Create",
            &props(name, "Grant"),
            None,
            None,
        );
        e["StackId"] = json!(stack_id);
        handle(
            w.app.clone(),
            &w.http,
            &e.to_string(),
            deadline_in(Duration::from_secs(30)),
        )
        .await
        .unwrap();
        assert_eq!(w.rec.received(&path)[0].body["Status"], "SUCCESS");
        // Out of band, the policy is deleted.
        w.app
            .clients
            .xray("us-east-1")
            .delete_resource_policy()
            .policy_name(name)
            .send()
            .await
            .unwrap();
    }
    let kept = w
        .invoke(
            &xray_trail("seq-stack-kept", "DeleteResourcePolicy"),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(kept["Status"], "REPAIRED", "{kept}");
    assert!(
        w.xray_document("seq-stack-kept").await.is_some(),
        "restored"
    );
    let gone = w
        .invoke(
            &xray_trail("seq-stack-gone", "DeleteResourcePolicy"),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(gone["Status"], "IN_SYNC", "{gone}");
    assert_eq!(
        w.xray_document("seq-stack-gone").await,
        None,
        "not restored"
    );
    let row = w
        .ledger()
        .get("xray:us-east-1:policy/seq-stack-gone")
        .await
        .unwrap()
        .unwrap();
    let owner = "cfn:arn:aws:cloudformation:us-east-1:123456789012:stack/deleted-retained/0000/Old";
    assert!(
        !row.owners[owner].present,
        "recorded gone: {:?}",
        row.owners
    );
}
