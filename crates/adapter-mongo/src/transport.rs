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

struct Inner {
    uid: String,
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
        let inner = Arc::new(Inner {
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
            tasks.spawn(writer(raw.clone(), rx));
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
async fn writer(collection: Collection<RawDocumentBuf>, mut rx: mpsc::Receiver<RawDocumentBuf>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        if let Err(e) = collection.insert_many(batch.drain(..)).ordered(true).await {
            tracing::warn!("mongo insert failed, messages dropped: {e}");
        }
    }
}

/// Whether the server said the stream's history is gone (not resumable): then we start from now.
fn history_lost(e: &mongodb::error::Error) -> bool {
    matches!(*e.kind, ErrorKind::Command(_)) && !e.contains_label(RESUMABLE_CHANGE_STREAM_ERROR)
}

/// The change stream: one per process, filtered on the server to inserts of other uids. Resumes
/// after the last event or quiet batch seen; restarts from now only when the history is lost.
async fn watcher(inner: Weak<Inner>, collection: Collection<RawDocumentBuf>) {
    let mut token: Option<ResumeToken> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        let Some(me) = inner.upgrade() else { return };
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
        let opened = watch.await;
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(e) => {
                if history_lost(&e) && token.is_some() {
                    tracing::warn!(
                        "the change stream cannot resume (history lost): restarting from now, \
                         messages sent meanwhile are lost: {e}"
                    );
                    token = None;
                } else {
                    tracing::warn!("cannot open the change stream, retrying in {backoff:?}: {e}");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
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
                    if history_lost(&e) {
                        tracing::warn!(
                            "the change stream's history is lost: restarting from now, \
                             messages sent meanwhile are lost: {e}"
                        );
                        token = None;
                    } else {
                        tracing::warn!("the change stream failed, resuming: {e}");
                    }
                    break;
                }
            }
            if !stream.is_alive() {
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
        match mongo::from_bson_bytes(raw.as_bytes(), &self.limits) {
            Ok(message) if message.uid != self.uid => {
                let namespaces = self.namespaces.read().unwrap_or_else(|e| e.into_inner());
                if let Some(inbox) = namespaces.get(&message.nsp) {
                    inbox.deliver(message);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(
                "dropped a document that is not a socket.io message: {}",
                switchboard_adapter_core::report(&e)
            ),
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
        self.queue.try_send(raw).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
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
