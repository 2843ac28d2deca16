//! The mongo transport: every message is a document inserted into one collection, and one change
//! stream per process (every namespace shares it) delivers the others' documents (protocol.md
//! §5).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock, Weak},
    time::Duration,
};

use mongodb::{
    Collection,
    bson::{Document, RawDocumentBuf, doc},
    change_stream::event::{ChangeStreamEvent, OperationType, ResumeToken},
    error::{ErrorKind, RESUMABLE_CHANGE_STREAM_ERROR},
};
use switchboard_adapter_core::{
    Attach, Inbox, Link, Liveness, Transport, TransportError, TransportErrorKind, UidScope,
};
use switchboard_wire::{ClusterMessage, Limits, MessageType, Timestamp, mongo};
use tokio::{sync::mpsc, task::JoinSet};

use crate::MongoOptions;

/// MongoDB's largest document.
pub const MAX_DOCUMENT_SIZE: usize = 16 * 1024 * 1024;

/// Documents inserted with one `insertMany` at most.
const BATCH: usize = 256;

/// What the transport counts (feature `prometheus`; nothing without it): its own
/// `socketio_mongo_*` counters, and the engine's wire sizes and drops once a namespace attached.
#[derive(Clone, Default)]
struct Counters {
    #[cfg(feature = "prometheus")]
    transport: Option<crate::MongoMetrics>,
    #[cfg(feature = "prometheus")]
    engine: Arc<std::sync::OnceLock<switchboard_adapter_core::Metrics>>,
}

#[cfg_attr(not(feature = "prometheus"), allow(unused_variables))]
impl Counters {
    fn new(options: &MongoOptions) -> Self {
        Counters {
            #[cfg(feature = "prometheus")]
            transport: options.metrics.clone(),
            #[cfg(feature = "prometheus")]
            engine: Arc::default(),
        }
    }

    fn attached(&self, attach: &Attach) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = &attach.metrics {
            let _ = self.engine.set(m.clone());
        }
    }

    fn inserted(&self, ok: bool, n: usize) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = &self.transport {
            let counter = if ok { &m.inserts } else { &m.insert_errors };
            counter.inc_by(n as u64);
        }
        if !ok {
            for _ in 0..n {
                self.dropped("insert_failed");
            }
        }
    }

    fn restarted(&self, resumed: bool) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = &self.transport {
            m.restarts.inc();
            if resumed {
                m.resumes.inc();
            }
        }
    }

    fn possible_loss(&self) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = &self.transport {
            m.possible_loss.inc();
        }
    }

    fn dropped(&self, reason: &str) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = self.engine.get() {
            m.dropped(reason);
        }
    }

    fn bytes(&self, sent: bool, len: usize) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = self.engine.get() {
            m.bytes(sent, len);
        }
    }
}

struct Inner {
    uid: String,
    counters: Counters,
    options: MongoOptions,
    namespaces: RwLock<HashMap<String, Inbox>>,
    queue: mpsc::Sender<RawDocumentBuf>,
    limits: Limits,
    /// The writer and the change stream: aborted when the transport is dropped.
    tasks: Mutex<JoinSet<()>>,
}

/// The MongoDB transport (one per process: one uid shared by every namespace, one change
/// stream). Build it with [`MongoTransport::new`] on the collection Node's adapter uses.
#[derive(Clone)]
pub struct MongoTransport {
    inner: Arc<Inner>,
}

impl MongoTransport {
    /// A transport on `collection`: starts the change stream (from now) and the writer.
    ///
    /// The collection must be capped ([`create_capped_collection`](crate::create_capped_collection))
    /// or have a TTL index on `createdAt` ([`create_ttl_index`](crate::create_ttl_index), with
    /// [`MongoOptions::add_created_at_field`]), as with Node's adapter.
    pub fn new(collection: Collection<Document>, options: MongoOptions) -> Self {
        let (queue, rx) = mpsc::channel(options.queue_capacity);
        let counters = Counters::new(&options);
        let inner = Arc::new(Inner {
            counters: counters.clone(),
            uid: options
                .uid
                .clone()
                .unwrap_or_else(switchboard_wire::ids::random_uid),
            options,
            namespaces: RwLock::new(HashMap::new()),
            queue,
            limits: Limits::DEFAULT,
            tasks: Mutex::new(JoinSet::new()),
        });
        let raw = collection.clone_with_type::<RawDocumentBuf>();
        {
            let mut tasks = inner.tasks.lock().unwrap_or_else(|e| e.into_inner());
            tasks.spawn(writer(raw.clone(), rx, counters));
            tasks.spawn(watcher(Arc::downgrade(&inner), raw));
        }
        MongoTransport { inner }
    }

    /// This server's uid (shared by all its namespaces).
    pub fn uid(&self) -> &str {
        &self.inner.uid
    }

    /// Test plumbing: behaves like a killed process (nothing sent or received any more).
    #[cfg(feature = "__test-support")]
    #[doc(hidden)]
    pub fn crash_for_tests(&self) {
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .abort_all();
        self.inner
            .namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// Inserts queued documents in order, as many per `insertMany` as are waiting: publishing never
/// waits for MongoDB, and a failed insert is logged and dropped (local delivery never depends
/// on it).
async fn writer(
    collection: Collection<RawDocumentBuf>,
    mut rx: mpsc::Receiver<RawDocumentBuf>,
    counters: Counters,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let n = batch.len();
        match collection.insert_many(batch.drain(..)).ordered(true).await {
            Ok(_) => counters.inserted(true, n),
            Err(e) => {
                // ordered: the documents before the first failing one are in; after a write
                // concern error alone all are
                let inserted = match &*e.kind {
                    ErrorKind::InsertMany(failure) => failure
                        .write_errors
                        .as_ref()
                        .and_then(|w| w.iter().map(|w| w.index).min())
                        .unwrap_or(n)
                        .min(n),
                    _ => 0,
                };
                counters.inserted(true, inserted);
                counters.inserted(false, n - inserted);
                tracing::warn!(
                    "mongo insert failed, {} message(s) dropped: {e}",
                    n - inserted
                );
            }
        }
    }
}

/// Server codes that say a resume token can no longer be used: the events after it are gone
/// (`ChangeStreamHistoryLost`, `ChangeStreamFatalError`, `InvalidResumeToken`, `CappedPositionLost`).
const HISTORY_LOST: [i32; 4] = [286, 280, 260, 136];

/// Failed opens with a token, for other non-resumable reasons, before the token is given up.
const MAX_FAILED_RESUMES: u32 = 5;

/// Why reopening with the resume token failed, if the token itself is the problem.
fn token_unusable(e: &mongodb::error::Error, failed_resumes: u32) -> Option<&'static str> {
    let ErrorKind::Command(c) = &*e.kind else {
        return None;
    };
    if HISTORY_LOST.contains(&c.code) {
        Some("the server no longer has the history after the last event seen")
    } else if !e.contains_label(RESUMABLE_CHANGE_STREAM_ERROR)
        && failed_resumes >= MAX_FAILED_RESUMES
    {
        Some("resuming after the last event seen keeps failing")
    } else {
        None
    }
}

/// The change stream: one per process, filtered on the server to inserts of other uids.
///
/// After the stream ends or fails (for whatever reason) it is reopened after the last event or
/// quiet batch seen (`resumeAfter`), with a backoff from 1 s to 30 s: nothing is lost. Only when
/// reopening with that token is refused because the history is gone does it start from now,
/// with a warning and `socketio_mongo_possible_loss_total` (Node silently does the same).
async fn watcher(inner: Weak<Inner>, collection: Collection<RawDocumentBuf>) {
    let mut token: Option<ResumeToken> = None;
    let mut backoff = Duration::from_secs(1);
    let mut opened_before = false;
    let mut failed_resumes = 0;
    loop {
        let Some(me) = inner.upgrade() else { return };
        let counters = me.counters.clone();
        let pipeline = [doc! {"$match": {
            "operationType": "insert",
            "fullDocument.uid": {"$ne": &me.uid},
        }}];
        let mut watch = collection
            .watch()
            .pipeline(pipeline)
            .resume_after(token.clone());
        if let Some(n) = me.options.batch_size {
            watch = watch.batch_size(n);
        }
        if let Some(t) = me.options.max_await_time {
            watch = watch.max_await_time(t);
        }
        drop(me);
        let mut stream = match watch.await {
            Ok(stream) => stream,
            Err(e) => {
                if token.is_some() {
                    failed_resumes += 1;
                    if let Some(why) = token_unusable(&e, failed_resumes) {
                        tracing::warn!(
                            "the change stream cannot resume ({why}): restarting from now;                              messages other servers sent meanwhile may be lost: {e}"
                        );
                        counters.possible_loss();
                        token = None;
                        failed_resumes = 0;
                        // no wait: the next open (from now) is a different request
                        continue;
                    }
                }
                tracing::warn!("cannot open the change stream, retrying in {backoff:?}: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        if opened_before {
            counters.restarted(token.is_some());
        }
        opened_before = true;
        failed_resumes = 0;
        backoff = Duration::from_secs(1);
        loop {
            match stream.next_if_any().await {
                Ok(Some(event)) => {
                    token = stream.resume_token();
                    let Some(me) = inner.upgrade() else { return };
                    me.event(event);
                }
                // a quiet batch: its postBatchResumeToken moves the resume point on
                Ok(None) => token = stream.resume_token().or(token),
                Err(e) => {
                    tracing::warn!("the change stream failed, resuming in {backoff:?}: {e}");
                    break;
                }
            }
            if !stream.is_alive() {
                tracing::warn!("the change stream ended, resuming in {backoff:?}");
                break;
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

/// Now, for `createdAt`.
fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_millis(ms)
}

impl Inner {
    /// Decodes an inserted document with our own code and hands it to its namespace; a foreign
    /// or malformed document is dropped.
    fn event(&self, event: ChangeStreamEvent<RawDocumentBuf>) {
        if event.operation_type != OperationType::Insert {
            return;
        }
        let Some(raw) = event.full_document else {
            return;
        };
        self.counters.bytes(false, raw.as_bytes().len());
        match mongo::from_bson_bytes(raw.as_bytes(), &self.limits) {
            Ok(message) if message.uid != self.uid => {
                let namespaces = self.namespaces.read().unwrap_or_else(|e| e.into_inner());
                match namespaces.get(&message.nsp) {
                    Some(inbox) => {
                        let _ = inbox.deliver(message);
                    }
                    None => self.counters.dropped("other_namespace"),
                }
            }
            Ok(_) => {}
            Err(e) => {
                self.counters.dropped("malformed");
                tracing::debug!(
                    "dropped a document that is not a socket.io message: {}",
                    switchboard_adapter_core::report(&e)
                );
            }
        }
    }

    fn enqueue(&self, message: &ClusterMessage) -> Result<(), TransportError> {
        // the mongo protocol has no close message (its 13 is SESSION): peers notice by heartbeats
        if message.message_type() == MessageType::AdapterClose {
            return Ok(());
        }
        let created_at = self.options.add_created_at_field.then(now);
        let doc = mongo::to_document(message, created_at);
        let raw = RawDocumentBuf::try_from(&doc).map_err(|e| {
            TransportError::new(TransportErrorKind::Other, "unencodable document").with_source(e)
        })?;
        if raw.as_bytes().len() > MAX_DOCUMENT_SIZE {
            return Err(TransportError::new(
                TransportErrorKind::Other,
                format!(
                    "a message of {} bytes exceeds MongoDB's 16 MiB document limit",
                    raw.as_bytes().len()
                ),
            ));
        }
        self.counters.bytes(true, raw.as_bytes().len());
        self.queue.try_send(raw).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                self.counters.dropped("queue_full");
                tracing::warn!("mongo insert queue full: message dropped");
                TransportError::new(TransportErrorKind::QueueFull, "mongo insert queue full")
            }
            mpsc::error::TrySendError::Closed(_) => {
                TransportError::new(TransportErrorKind::Closed, "mongo transport closed")
            }
        })
    }
}

impl Transport for MongoTransport {
    type Link = MongoLink;

    async fn attach(&self, attach: Attach) -> Result<MongoLink, TransportError> {
        self.inner.counters.attached(&attach);
        self.inner
            .namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(attach.nsp.clone(), attach.inbox);
        Ok(MongoLink {
            inner: self.inner.clone(),
            nsp: attach.nsp,
        })
    }

    fn uid_scope(&self) -> UidScope {
        UidScope::Process(self.inner.uid.clone())
    }
}

/// A namespace on the collection.
pub struct MongoLink {
    inner: Arc<Inner>,
    nsp: String,
}

impl Link for MongoLink {
    fn publish(&self, message: ClusterMessage) -> Result<(), TransportError> {
        self.inner.enqueue(&message)
    }

    /// Responses are documents like the rest: every server sees them, the requester takes its
    /// own by request id.
    fn publish_to(&self, _node: &str, message: ClusterMessage) -> Result<(), TransportError> {
        self.inner.enqueue(&message)
    }

    fn liveness(&self) -> Liveness {
        Liveness::Heartbeat
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.inner
            .namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.nsp);
        Ok(())
    }
}
