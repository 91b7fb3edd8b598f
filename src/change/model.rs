//! A model check of the ownership protocol (docs/ownership.md, issue 14), with the
//! `stateright` model checker: every interleaving of a small world, exhaustively.
//!
//! The world is one target. Owners (CloudFormation resources) each run a small script of
//! changes; a repairer runs drift repairs; someone edits the live policy out of band. Three
//! stores: the **ledger** (one item: `change_version` and one record per owner), the
//! **service** (the live policy and its revision; with a precondition, or Kinesis without),
//! and **CloudFormation's view** (the properties it last saw accepted, per owner).
//!
//! Every executor step that touches a store is one model action, so any step of any actor
//! may fall between any two steps of another: a write planned from a stale read may land
//! after someone else's Delete. A write may also fail its precondition, land without a
//! reply, or be lost before it lands; the writer then treats the outcome as unknown and
//! reads again.
//!
//! The executor mirrors docs/ownership.md:
//! 1. record (one atomic ledger step returning the item as it was, so it sees every other
//!    owner; a refusal undoes the record in a second step),
//! 2. read the live policy (after the ledger), plan (a pure function, [`plan`]),
//! 3. write, guarded by the revision read in 2 (Kinesis: unguarded, then re-read and
//!    compare),
//! 4. settle: returns the latest ledger; if `change_version` moved since the plan's read,
//!    plan again (the fence).
//!
//! A repair runs 2-4, its step 4 a re-read of `change_version`.
//!
//! `fenced: false` is the protocol before issue 14 (no re-check at settle, repairs with no
//! check after writing): the checker must find a counterexample there
//! ([`tests::the_old_protocol_resurrects_a_deleted_grant`]).

use std::fmt::Write as _;

use stateright::{Checker, Model, Property};

// ---------------------------------------------------------------------------------------
// Nouns

/// A set of Sids (bit i = Sid i of the world).
type Sids = u8;

/// A statement in the live policy: its Sid and who wrote which body of it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Stmt {
    sid: u8,
    /// `owner << 4 | generation` of the owner's properties that produced the body, or
    /// [`HAND`] for a statement the function never placed.
    tag: u8,
}

const HAND: u8 = 0xFF;

fn owned(owner: usize, gen: u8, sid: u8) -> Stmt {
    Stmt {
        sid,
        tag: ((owner as u8) << 4) | gen,
    }
}

type Doc = Vec<Stmt>;

#[derive(Clone, Copy, Debug, Default, Hash, PartialEq, Eq)]
enum Presence {
    #[default]
    Absent,
    Present,
    Gone,
}

/// One owner's record in the ledger.
#[derive(Clone, Copy, Debug, Default, Hash, PartialEq, Eq)]
struct Record {
    presence: Presence,
    /// Whole-policy owner (`Policy`) rather than statements (`Statements`).
    whole: bool,
    /// The Sids it wants (statements mode), or its document's Sids (whole mode).
    sids: Sids,
    /// Generation of its properties: a new body for the same Sids is a new generation.
    gen: u8,
    /// Sids it placed before and no longer wants (all of them once gone).
    retired: Sids,
}

const MAX_OWNERS: usize = 3;

/// The ledger item of the one target.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub struct Ledger {
    owners: [Record; MAX_OWNERS],
    /// Whole mode: the document a whole-policy owner took over, restored when it goes.
    prior: Option<Doc>,
}

// ---------------------------------------------------------------------------------------
// The plan: a pure function of the ledger view and the live document.

/// The document to write, from the ledger (as read) and the live policy (read after it).
///
/// - a present whole-policy owner: its document;
/// - live statements whose Sid a present owner holds: that owner's statement, in place;
/// - Sids retired or gone that no present owner holds: removed;
/// - everything else (hand-written): kept in place;
/// - present owners' statements not yet placed: appended;
/// - no whole owner present but one gone with a prior document: the prior's statements
///   that are missing come back (in front, where they were).
pub fn plan(ledger: &Ledger, live: &[Stmt]) -> Doc {
    let present = |r: &Record| r.presence == Presence::Present;
    if let Some((w, rec)) = ledger
        .owners
        .iter()
        .enumerate()
        .find(|(_, r)| present(r) && r.whole)
    {
        return sids(rec.sids).map(|s| owned(w, rec.gen, s)).collect();
    }
    let holder = |sid: u8| {
        ledger
            .owners
            .iter()
            .enumerate()
            .find(|(_, r)| present(r) && r.sids & bit(sid) != 0)
    };
    let removed: Sids = ledger
        .owners
        .iter()
        .fold(0, |acc, r| acc | r.retired | if present(r) { 0 } else { r.sids });
    let mut out = Doc::new();
    let mut placed: Sids = 0;
    if let Some(prior) = &ledger.prior {
        // A whole owner went: what it took over comes back (unless it is live already).
        for st in prior {
            if !live.iter().any(|l| l.sid == st.sid) && holder(st.sid).is_none() {
                out.push(*st);
            }
        }
    }
    for st in live {
        match holder(st.sid) {
            Some((o, rec)) => {
                if placed & bit(st.sid) == 0 {
                    out.push(owned(o, rec.gen, st.sid));
                    placed |= bit(st.sid);
                }
            }
            None if removed & bit(st.sid) != 0 => {}
            None => out.push(*st),
        }
    }
    for (o, rec) in ledger.owners.iter().enumerate() {
        if present(rec) {
            for s in sids(rec.sids) {
                if placed & bit(s) == 0 {
                    out.push(owned(o, rec.gen, s));
                    placed |= bit(s);
                }
            }
        }
    }
    out
}

fn bit(sid: u8) -> Sids {
    1 << sid
}

fn sids(set: Sids) -> impl Iterator<Item = u8> {
    (0..8).filter(move |s| set & bit(*s) != 0)
}

// ---------------------------------------------------------------------------------------
// Scripts: what CloudFormation sends for each owner.

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Want {
    /// Statements mode: these Sids, bodies of this generation.
    Statements(Sids, u8),
    /// Whole mode: a document of these Sids, bodies of this generation.
    Whole(Sids, u8),
    /// Delete.
    Gone,
}

#[derive(Clone, Copy, Debug)]
pub struct Op {
    name: &'static str,
    want: Want,
    /// CloudFormation's next request for this owner after SUCCESS / FAILED ([`END`]: none).
    next_ok: u8,
    next_fail: u8,
}

const END: u8 = 0xFF;

/// A world to check, and the protocol's switches.
#[derive(Clone, Debug)]
pub struct World {
    pub name: &'static str,
    pub sid_names: &'static [&'static str],
    /// The live policy before anything happens (hand-written statements).
    pub initial: &'static [u8],
    pub scripts: Vec<&'static [Op]>,
    /// A second delivery of this owner's first request (a retried Create), run
    /// concurrently by another invocation.
    pub duplicate_first: Option<usize>,
    /// The service has a precondition (revision) on writes; false: Kinesis.
    pub precondition: bool,
    /// The fence: settle re-checks `change_version`, a repair re-checks after writing.
    pub fenced: bool,
    /// Scheduled repairs that may start at any time.
    pub repairs: u8,
    /// Out-of-band edits (each removes one statement the function placed, and its
    /// CloudTrail event triggers one more repair).
    pub drifts: u8,
    /// Writes that land without a reply or are lost before landing, in one run.
    pub faults: u8,
}

// ---------------------------------------------------------------------------------------
// Actors

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Phase {
    /// Before request `pc` (owner), between runs (repairer).
    Idle,
    /// Refused: the record is to be undone (restoring `prior`).
    Undo { prior: Record },
    ReadLedger,
    /// Ledger read (or returned by record / settle), the live policy is next.
    ReadLive { snap: Ledger },
    /// Planned `doc` (guarded by the revision read, see [`Proc::rev_fresh`]).
    Write { doc: Doc },
    /// Kinesis: written without a guard, re-read to see whether someone replaced it.
    Check { doc: Doc },
    /// Settle (owner) or re-check (repairer) against the plan's `change_version` (see
    /// [`Proc::cv_fresh`]).
    Settle,
    Done,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Proc {
    pc: u8,
    phase: Phase,
    /// The ledger this actor last read is still at the current `change_version`. (The
    /// model keeps this flag instead of version numbers: only "moved since?" matters,
    /// and numbers would make otherwise equal states differ.)
    cv_fresh: bool,
    /// The live policy this actor last read is still at the current revision.
    rev_fresh: bool,
    /// Whole mode: the live policy this request read first (before any write of its
    /// own), which becomes the ledger's `prior` at settle.
    first_read: Option<Doc>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct State {
    ledger: Ledger,
    live: Doc,
    /// Owners' executors, then the duplicate delivery (if any), then the repairer.
    procs: Vec<Proc>,
    /// CloudFormation's view: the properties it saw accepted last (None: no resource).
    cfn: [Option<Want>; MAX_OWNERS],
    /// Owners whose Delete answered SUCCESS.
    deleted: u8,
    faults_left: u8,
    drifts_left: u8,
    repairs_left: u8,
    /// Repairs triggered by out-of-band edits, not yet started.
    triggers: u8,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The next step of an actor (a record, a read, a settle: one store call each).
    Step(usize),
    /// An actor's write reaches the service.
    Write(usize, Outcome),
    /// Someone removes the live statement at this index out of band.
    Drift(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Applied (or refused by the precondition) with a reply.
    Replied,
    /// Applied, reply lost: the writer does not know.
    LandedNoReply,
    /// Never arrived: the writer does not know either.
    Lost,
}

impl World {
    fn owners(&self) -> usize {
        self.scripts.len()
    }
    fn dup_index(&self) -> Option<usize> {
        self.duplicate_first.map(|_| self.owners())
    }
    fn repairer(&self) -> usize {
        self.owners() + usize::from(self.duplicate_first.is_some())
    }
    /// Which owner an executor acts for (None: the repairer).
    fn owner_of(&self, p: usize) -> Option<usize> {
        if p < self.owners() {
            Some(p)
        } else if Some(p) == self.dup_index() {
            self.duplicate_first
        } else {
            None
        }
    }
    fn op(&self, p: usize, pc: u8) -> Option<&Op> {
        let owner = self.owner_of(p)?;
        if pc == END {
            return None;
        }
        self.scripts[owner].get(pc as usize)
    }
}

fn idle(pc: u8) -> Proc {
    Proc {
        pc,
        phase: Phase::Idle,
        cv_fresh: false,
        rev_fresh: false,
        first_read: None,
    }
}

impl State {
    /// A ledger change: every earlier read of it is now stale.
    fn bump_cv(&mut self) {
        for p in &mut self.procs {
            p.cv_fresh = false;
        }
    }
    /// A change of the live policy: every earlier read of it is now stale.
    fn bump_rev(&mut self) {
        for p in &mut self.procs {
            p.rev_fresh = false;
        }
    }
    /// The actor reads the ledger now.
    fn read_ledger(&mut self, i: usize) -> Ledger {
        self.procs[i].cv_fresh = true;
        self.ledger.clone()
    }
}

impl State {
    /// No request in flight, no repair running or owed.
    fn quiescent(&self, w: &World) -> bool {
        self.triggers == 0
            && self.procs.iter().enumerate().all(|(i, p)| {
                if i == w.repairer() {
                    p.phase == Phase::Idle
                } else {
                    p.phase == Phase::Done
                }
            })
    }
    fn present(&self, o: usize) -> bool {
        self.ledger.owners[o].presence == Presence::Present
    }
    /// The statements the present owners want, by the ledger.
    fn wanted(&self) -> Doc {
        plan(
            &Ledger {
                prior: None,
                ..self.ledger.clone()
            },
            &[],
        )
    }
}

// ---------------------------------------------------------------------------------------
// The protocol as transitions.

impl Model for World {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let mut procs: Vec<Proc> = (0..self.owners()).map(|_| idle(0)).collect();
        if self.duplicate_first.is_some() {
            procs.push(idle(0));
        }
        procs.push(idle(0));
        vec![State {
            ledger: Ledger::default(),
            live: self.initial.iter().map(|&sid| Stmt { sid, tag: HAND }).collect(),
            procs,
            cfn: [None; MAX_OWNERS],
            deleted: 0,
            faults_left: self.faults,
            drifts_left: self.drifts,
            repairs_left: self.repairs,
            triggers: 0,
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for (i, p) in s.procs.iter().enumerate() {
            match &p.phase {
                Phase::Done => {}
                Phase::Idle if i == self.repairer() => {
                    if s.triggers > 0 || s.repairs_left > 0 {
                        actions.push(Action::Step(i));
                    }
                }
                Phase::Idle if Some(i) == self.dup_index() => {
                    // A second delivery of the owner's first request: only once it was sent.
                    let owner = self.duplicate_first.unwrap();
                    let first = &s.procs[owner];
                    if first.pc != 0 || first.phase != Phase::Idle {
                        actions.push(Action::Step(i));
                    }
                }
                Phase::Write { .. } => {
                    actions.push(Action::Write(i, Outcome::Replied));
                    if s.faults_left > 0 {
                        actions.push(Action::Write(i, Outcome::LandedNoReply));
                        actions.push(Action::Write(i, Outcome::Lost));
                    }
                }
                _ => actions.push(Action::Step(i)),
            }
        }
        if s.drifts_left > 0 {
            for (k, st) in s.live.iter().enumerate() {
                if st.tag != HAND {
                    actions.push(Action::Drift(k));
                }
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Drift(k) => {
                s.live.remove(k);
                s.bump_rev();
                s.drifts_left -= 1;
                s.triggers += 1;
            }
            Action::Write(i, outcome) => {
                let Phase::Write { doc } = s.procs[i].phase.clone() else {
                    unreachable!()
                };
                let guard_ok = !self.precondition || s.procs[i].rev_fresh;
                let lands = outcome != Outcome::Lost && guard_ok;
                if lands {
                    s.live = doc.clone();
                    s.bump_rev();
                }
                if outcome != Outcome::Replied {
                    s.faults_left -= 1;
                }
                s.procs[i].phase = match outcome {
                    Outcome::Replied if guard_ok && self.precondition => Phase::Settle,
                    Outcome::Replied if guard_ok => Phase::Check { doc },
                    Outcome::Replied => {
                        self.again(&mut s, i, Phase::ReadLedger);
                        return Some(s);
                    }
                    _ => {
                        self.again(&mut s, i, Phase::ReadLedger);
                        return Some(s);
                    }
                };
            }
            Action::Step(i) => self.step(&mut s, i),
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("removed grant stays removed at rest", |w: &World, s: &State| {
                !s.quiescent(w) || removed_grants_absent(s)
            }),
            Property::always("a deleted grant is live only while a writer is in flight", |_: &World, s: &State| {
                // After a Delete answered SUCCESS, a stale writer may put the grant back
                // for a moment; its own fence must still be running to take it out again.
                let in_flight =
                    s.procs.iter().any(|p| !matches!(p.phase, Phase::Idle | Phase::Done));
                in_flight || !deleted_grant_live(s)
            }),
            Property::always("no owner loses a statement (at rest)", |w: &World, s: &State| {
                !s.quiescent(w) || s.wanted().iter().all(|st| s.live.contains(st))
            }),
            Property::always(
                "live policy is exactly the owners' plus the hand-written (at rest)",
                |w: &World, s: &State| !s.quiescent(w) || exact(w, s),
            ),
            Property::always("a Sid is held by at most one accepted owner", |w: &World, s: &State| {
                // A refused record is in the ledger until its undo: not accepted.
                let mut seen: Sids = 0;
                for (o, r) in s.ledger.owners.iter().enumerate() {
                    if r.presence == Presence::Present && !undo_pending(w, s, o) {
                        if seen & r.sids != 0 {
                            return false;
                        }
                        seen |= r.sids;
                    }
                }
                true
            }),
            Property::always("the ledger says what CloudFormation accepted (at rest)", |w: &World, s: &State| {
                !s.quiescent(w) || ledger_matches_cfn(w, s)
            }),
            Property::eventually("every run comes to rest", |w: &World, s: &State| s.quiescent(w)),
            // Witnesses: the model does reach the situations it is about.
            Property::sometimes("a change is refused", |_: &World, s: &State| {
                s.procs.iter().any(|p| matches!(p.phase, Phase::Undo { .. }))
            }),
            Property::sometimes("a write is about to fail its precondition", |w: &World, s: &State| {
                !w.precondition
                    || s.procs.iter().any(|p| matches!(p.phase, Phase::Write { .. }) && !p.rev_fresh)
            }),
            Property::sometimes("a write's reply is lost", |w: &World, s: &State| {
                w.faults == 0 || s.faults_left < w.faults
            }),
            Property::sometimes("the fence is about to send a writer back", |w: &World, s: &State| {
                !w.fenced || s.procs.iter().any(|p| p.phase == Phase::Settle && !p.cv_fresh)
            }),
            Property::sometimes("every owner deleted, at rest", |w: &World, s: &State| {
                s.quiescent(w) && s.deleted.count_ones() as usize == w.owners()
            }),
        ]
    }

    fn format_action(&self, action: &Action) -> String {
        match action {
            Action::Step(i) => format!("{} {}", self.actor(*i), "step"),
            Action::Write(i, o) => format!("{} write {:?}", self.actor(*i), o),
            Action::Drift(k) => format!("out-of-band edit removes live[{k}]"),
        }
    }
}

fn undo_pending(w: &World, s: &State, owner: usize) -> bool {
    s.procs.iter().enumerate().any(|(i, p)| {
        w.owner_of(i) == Some(owner) && matches!(p.phase, Phase::Undo { .. })
    })
}

impl World {
    fn actor(&self, i: usize) -> String {
        match self.owner_of(i) {
            Some(o) if Some(i) == self.dup_index() => format!("{}(dup)", owner_name(o)),
            Some(o) => owner_name(o).to_string(),
            None => "repair".to_string(),
        }
    }

    /// Back to an earlier phase for another round. Rounds are not counted (a counter
    /// would make otherwise equal states differ); [`find_cycle`] proves instead that no
    /// run can go round forever.
    fn again(&self, s: &mut State, i: usize, phase: Phase) {
        s.procs[i].phase = phase;
    }

    /// An owner's request answered: CloudFormation's view follows, the script goes on.
    fn answer(&self, s: &mut State, i: usize, ok: bool) {
        let owner = self.owner_of(i).unwrap();
        let p = &s.procs[i];
        let op = *self.op(i, p.pc).unwrap();
        if Some(i) == self.dup_index() {
            // CloudFormation took the first answer; this delivery's is dropped.
            s.procs[i] = Proc {
                phase: Phase::Done,
                ..idle(END)
            };
            return;
        }
        if ok {
            match op.want {
                Want::Gone => {
                    s.cfn[owner] = None;
                    s.deleted |= 1 << owner;
                }
                want => s.cfn[owner] = Some(want),
            }
        }
        let next = if ok { op.next_ok } else { op.next_fail };
        s.procs[i] = idle(next);
        if next == END {
            s.procs[i].phase = Phase::Done;
        }
    }

    fn step(&self, s: &mut State, i: usize) {
        let phase = s.procs[i].phase.clone();
        match phase {
            Phase::Idle if i == self.repairer() => {
                if s.triggers > 0 {
                    s.triggers -= 1;
                } else {
                    s.repairs_left -= 1;
                }
                s.procs[i] = idle(0);
                let snap = s.read_ledger(i);
                s.procs[i].phase = Phase::ReadLive { snap };
            }
            Phase::Idle => self.record(s, i),
            Phase::Undo { prior } => {
                let owner = self.owner_of(i).unwrap();
                s.ledger.owners[owner] = prior;
                s.bump_cv();
                self.answer(s, i, false);
            }
            Phase::ReadLedger => {
                let snap = s.read_ledger(i);
                s.procs[i].phase = Phase::ReadLive { snap };
            }
            Phase::ReadLive { snap } => {
                let whole = self
                    .op(i, s.procs[i].pc)
                    .is_some_and(|op| matches!(op.want, Want::Whole(..)));
                if whole && s.procs[i].first_read.is_none() {
                    s.procs[i].first_read = Some(s.live.clone());
                }
                let doc = plan(&snap, &s.live);
                s.procs[i].rev_fresh = true;
                s.procs[i].phase = if doc == s.live {
                    Phase::Settle
                } else {
                    Phase::Write { doc }
                };
            }
            Phase::Write { .. } => unreachable!("writes are Action::Write"),
            Phase::Check { doc } => {
                if s.live == doc {
                    s.procs[i].phase = Phase::Settle;
                } else {
                    self.again(s, i, Phase::ReadLedger);
                }
            }
            Phase::Settle => {
                if self.fenced && !s.procs[i].cv_fresh {
                    let snap = s.read_ledger(i);
                    self.again(s, i, Phase::ReadLive { snap });
                    return;
                }
                if i == self.repairer() {
                    s.procs[i] = idle(0);
                    return;
                }
                let owner = self.owner_of(i).unwrap();
                // Whole mode: the document taken over is kept once, at the first settle.
                if s.ledger.owners[owner].whole
                    && s.ledger.owners[owner].presence == Presence::Present
                    && s.ledger.prior.is_none()
                {
                    let first = s.procs[i].first_read.clone().unwrap_or_default();
                    s.ledger.prior = Some(first.into_iter().filter(|st| st.tag == HAND).collect());
                    s.bump_cv();
                }
                self.answer(s, i, true);
            }
            Phase::Done => unreachable!(),
        }
    }

    /// Step 1: one atomic ledger update that returns the item as it was.
    fn record(&self, s: &mut State, i: usize) {
        let owner = self.owner_of(i).unwrap();
        let op = *self.op(i, s.procs[i].pc).unwrap();
        let old = s.ledger.owners[owner];
        let is_create = s.procs[i].pc == 0;
        let new = match op.want {
            Want::Gone => Record {
                presence: Presence::Gone,
                whole: old.whole,
                sids: 0,
                gen: old.gen,
                retired: old.retired | old.sids,
            },
            Want::Statements(want, gen) | Want::Whole(want, gen) => {
                if old.presence == Presence::Gone {
                    // Gone is final: a late delivery after the Delete changes nothing.
                    self.answer(s, i, false);
                    return;
                }
                if is_create && old.presence == Presence::Present {
                    // A duplicate Create: the record stands, converge again.
                    let snap = s.read_ledger(i);
                    s.procs[i].phase = Phase::ReadLive { snap };
                    return;
                }
                Record {
                    presence: Presence::Present,
                    whole: matches!(op.want, Want::Whole(..)),
                    sids: want,
                    gen,
                    retired: (old.retired | old.sids) & !want,
                }
            }
        };
        s.ledger.owners[owner] = new;
        s.bump_cv();
        let conflict = new.presence == Presence::Present
            && s.ledger.owners.iter().enumerate().any(|(o, r)| {
                o != owner
                    && r.presence == Presence::Present
                    && (r.sids & new.sids != 0 || r.whole || new.whole)
            });
        s.procs[i].first_read = None;
        if conflict {
            s.procs[i].phase = Phase::Undo { prior: old };
        } else {
            let snap = s.read_ledger(i);
            s.procs[i].phase = Phase::ReadLive { snap };
        }
    }
}

// ---------------------------------------------------------------------------------------
// Properties' helpers

/// Gone owners' Sids that no present owner holds are not live.
fn removed_grants_absent(s: &State) -> bool {
    let held: Sids = s
        .ledger
        .owners
        .iter()
        .filter(|r| r.presence == Presence::Present)
        .fold(0, |a, r| a | r.sids);
    let gone: Sids = s
        .ledger
        .owners
        .iter()
        .filter(|r| r.presence == Presence::Gone)
        .fold(0, |a, r| a | r.retired);
    s.live
        .iter()
        .all(|st| st.tag == HAND || gone & !held & bit(st.sid) == 0)
}

/// A statement placed by an owner whose Delete answered SUCCESS, at a Sid no present owner
/// holds, is live.
fn deleted_grant_live(s: &State) -> bool {
    let held: Sids = s
        .ledger
        .owners
        .iter()
        .filter(|r| r.presence == Presence::Present)
        .fold(0, |a, r| a | r.sids);
    s.live.iter().any(|st| {
        st.tag != HAND && s.deleted & (1 << (st.tag >> 4)) != 0 && held & bit(st.sid) == 0
    })
}

/// The live policy is the hand-written statements, in their order, plus the present
/// owners' statements, each once.
fn exact(w: &World, s: &State) -> bool {
    let whole_present = s.ledger.owners.iter().any(|r| r.presence == Presence::Present && r.whole);
    let hand: Vec<u8> = s.live.iter().filter(|st| st.tag == HAND).map(|st| st.sid).collect();
    let wanted = s.wanted();
    let owned: Vec<Stmt> = s.live.iter().filter(|st| st.tag != HAND).copied().collect();
    let hand_ok = if whole_present {
        hand.is_empty()
    } else {
        hand == w.initial
    };
    hand_ok && owned.len() == wanted.len() && wanted.iter().all(|st| owned.contains(st))
}

fn ledger_matches_cfn(w: &World, s: &State) -> bool {
    (0..w.owners()).all(|o| {
        let r = &s.ledger.owners[o];
        match s.cfn[o] {
            None => r.presence != Presence::Present,
            Some(Want::Statements(sids, gen)) | Some(Want::Whole(sids, gen)) => {
                r.presence == Presence::Present && r.sids == sids && r.gen == gen
            }
            Some(Want::Gone) => unreachable!(),
        }
    })
}

fn owner_name(o: usize) -> &'static str {
    ["A", "B", "C"][o]
}

fn show_doc(w: &World, doc: &[Stmt]) -> String {
    let mut out = String::from("[");
    for (k, st) in doc.iter().enumerate() {
        if k > 0 {
            out.push_str(", ");
        }
        out.push_str(w.sid_names[st.sid as usize]);
        if st.tag != HAND {
            let _ = write!(out, "<{}{}", owner_name((st.tag >> 4) as usize), st.tag & 0xF);
        }
    }
    out.push(']');
    out
}

fn show_state(w: &World, s: &State) -> String {
    let mut out = format!("live {}  ledger", show_doc(w, &s.live));
    for o in 0..w.owners() {
        let r = &s.ledger.owners[o];
        let names = |set: Sids| sids(set).map(|x| w.sid_names[x as usize]).collect::<Vec<_>>().join(",");
        let _ = write!(
            out,
            " {}:{:?}{{{}}}g{}{}",
            owner_name(o),
            r.presence,
            names(r.sids),
            r.gen,
            if r.retired != 0 { format!(" retired {{{}}}", names(r.retired)) } else { String::new() }
        );
    }
    out
}

/// A discovery as one line per step: who did what, and the stores after it.
fn trace(w: &World, path: stateright::Path<State, Action>) -> String {
    let mut out = String::new();
    let steps = path.into_vec();
    for (state, action) in steps {
        let _ = writeln!(out, "    {}", show_state(w, &state));
        if let Some(a) = action {
            let who = match &a {
                Action::Step(i) | Action::Write(i, _) => {
                    let p = &state.procs[*i];
                    let op = w.op(*i, p.pc).map(|o| o.name).unwrap_or("repair");
                    format!("{} [{}] {:?}", w.actor(*i), op, phase_name(&p.phase))
                }
                Action::Drift(_) => String::new(),
            };
            let _ = writeln!(out, "  -> {} {}", w.format_action(&a), who);
        }
    }
    out
}

fn phase_name(p: &Phase) -> &'static str {
    match p {
        Phase::Idle => "record/start",
        Phase::Undo { .. } => "undo refused record",
        Phase::ReadLedger => "read ledger",
        Phase::ReadLive { .. } => "read live + plan",
        Phase::Write { .. } => "write",
        Phase::Check { .. } => "re-read after write",
        Phase::Settle { .. } => "settle / re-check",
        Phase::Done => "done",
    }
}

// ---------------------------------------------------------------------------------------
// Worlds

const SIDS: &[&str] = &["A1", "A2", "B1", "Hand"];
const A1: Sids = 1 << 0;
const A2: Sids = 1 << 1;
const B1: Sids = 1 << 2;

/// Owner A: create; update to swap A1 for A2 with a new body (adds one Sid, retires
/// another); delete.
const SCRIPT_A: &[Op] = &[
    Op { name: "Create", want: Want::Statements(A1, 0), next_ok: 1, next_fail: 2 },
    Op { name: "Update A1->A2", want: Want::Statements(A2, 1), next_ok: 2, next_fail: 2 },
    Op { name: "Delete", want: Want::Gone, next_ok: END, next_fail: END },
];

/// Owner A in the bigger worlds: create, delete.
const SCRIPT_A_SHORT: &[Op] = &[
    Op { name: "Create", want: Want::Statements(A1, 0), next_ok: 1, next_fail: 1 },
    Op { name: "Delete", want: Want::Gone, next_ok: END, next_fail: END },
];

/// Owner B: create; try to take Sid A1 (refused while A holds it, then CloudFormation's
/// rollback Update back to the old properties; accepted once A retired it); delete.
const SCRIPT_B: &[Op] = &[
    Op { name: "Create", want: Want::Statements(B1, 0), next_ok: 1, next_fail: 4 },
    Op { name: "Update +A1", want: Want::Statements(B1 | A1, 1), next_ok: 3, next_fail: 2 },
    Op { name: "Rollback", want: Want::Statements(B1, 0), next_ok: 3, next_fail: 3 },
    Op { name: "Delete", want: Want::Gone, next_ok: END, next_fail: END },
    Op { name: "Delete (create rolled back)", want: Want::Gone, next_ok: END, next_fail: END },
];

fn two_owners() -> World {
    World {
        name: "two statement owners, guarded writes",
        sid_names: SIDS,
        initial: &[3],
        scripts: vec![SCRIPT_A, SCRIPT_B],
        duplicate_first: None,
        precondition: true,
        fenced: true,
        repairs: 1,
        drifts: 0,
        faults: 1,
    }
}

/// Property (5), convergence: the state graph has no cycle, so every run ends (the
/// scripts are finite, so a cycle is the only way not to), and stateright's `eventually`
/// (which only sees paths that end) is then complete. A depth-first search over state
/// fingerprints; returns the actions into and around a cycle.
fn find_cycle(w: &World) -> Option<Vec<Action>> {
    use std::collections::HashMap;
    use std::hash::{BuildHasher, RandomState};
    let hasher = RandomState::new();
    // false: on the current path; true: finished.
    let mut color: HashMap<u64, bool> = HashMap::new();
    struct Frame {
        state: State,
        actions: Vec<Action>,
        via: Option<Action>,
    }
    for init in w.init_states() {
        let fp = hasher.hash_one(&init);
        if color.contains_key(&fp) {
            continue;
        }
        color.insert(fp, false);
        let mut actions = Vec::new();
        w.actions(&init, &mut actions);
        let mut stack = vec![Frame { state: init, actions, via: None }];
        while let Some(top) = stack.last_mut() {
            let Some(action) = top.actions.pop() else {
                let done = stack.pop().unwrap();
                color.insert(hasher.hash_one(&done.state), true);
                continue;
            };
            let Some(next) = w.next_state(&top.state, action.clone()) else {
                continue;
            };
            let fp = hasher.hash_one(&next);
            match color.get(&fp) {
                Some(true) => {}
                Some(false) => {
                    let mut path: Vec<Action> = stack.iter().filter_map(|f| f.via.clone()).collect();
                    path.push(action);
                    return Some(path);
                }
                None => {
                    color.insert(fp, false);
                    let mut actions = Vec::new();
                    w.actions(&next, &mut actions);
                    stack.push(Frame { state: next, actions, via: Some(action) });
                }
            }
        }
    }
    None
}

const STATE_LIMIT: usize = 3_000_000;

fn check(world: World) -> (usize, usize) {
    let w = world.clone();
    let start = std::time::Instant::now();
    // A bound on the exploration, so a model that grew too big fails instead of eating
    // the machine's memory.
    let checker = world.checker().target_state_count(STATE_LIMIT).spawn_bfs().join();
    println!("[{}] {} states, {} unique", w.name, checker.state_count(), checker.unique_state_count());
    assert!(
        checker.state_count() < STATE_LIMIT,
        "[{}] more than {STATE_LIMIT} states: shrink the world",
        w.name
    );
    let states = checker.unique_state_count();
    println!(
        "model check [{}]: {} states explored ({} unique), max depth {}, {:.1?}",
        w.name,
        checker.state_count(),
        states,
        checker.max_depth(),
        start.elapsed()
    );
    let mut failures = String::new();
    let start = std::time::Instant::now();
    if let Some(cycle) = find_cycle(&w) {
        let _ = writeln!(failures, "VIOLATED: every run ends (a cycle: a run can go round forever)");
        for a in cycle {
            let _ = writeln!(failures, "  -> {}", w.format_action(&a));
        }
    }
    println!("model check [{}]: no cycle ({:.1?})", w.name, start.elapsed());
    for p in w.properties() {
        let found = checker.discovery(p.name);
        match (p.expectation.discovery_is_failure(), found) {
            (true, Some(path)) => {
                let _ = writeln!(failures, "VIOLATED: {}\n{}", p.name, trace(&w, path));
            }
            (false, None) => {
                let _ = writeln!(failures, "never reached (the model is vacuous there): {}", p.name);
            }
            _ => {}
        }
    }
    assert!(failures.is_empty(), "[{}]\n{failures}", w.name);
    (checker.state_count(), states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_statement_owners_guarded() {
        check(two_owners());
    }
}

#[cfg(test)]
mod sizes {
    use super::*;

    #[test]
    #[ignore]
    fn sizes() {
        let base = two_owners();
        let short = World { scripts: vec![SCRIPT_A_SHORT, SCRIPT_B], ..base.clone() };
        let variants: Vec<(&str, World)> = vec![
            ("full, faults, no repair", World { repairs: 0, ..base.clone() }),
            ("short A, repair, faults", short.clone()),
            ("short A, repair, faults 2", World { faults: 2, ..short.clone() }),
            ("short A, repair, drift", World { drifts: 1, ..short.clone() }),
            ("short A, repair 2", World { repairs: 2, ..short.clone() }),
            ("short A, kinesis", World { precondition: false, ..short.clone() }),
            ("short A, dup", World { duplicate_first: Some(1), ..short.clone() }),
        ];
        for (name, w) in variants {
            let start = std::time::Instant::now();
            let c = w.checker().target_state_count(3_000_000).spawn_bfs().join();
            println!("{name}: {} states, {} unique, done {}, depth {}, {:.1?}", c.state_count(), c.unique_state_count(), c.is_done(), c.max_depth(), start.elapsed());
        }
    }
}
