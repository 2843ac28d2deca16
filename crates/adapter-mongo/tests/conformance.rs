//! The engine's conformance suite on a real MongoDB-wire server (SecantusDB, started by the
//! fixture on a free port): a capped collection, and a TTL collection with `createdAt`.

use std::time::Duration;

use mongodb::{Client, Collection, bson::Document};
use switchboard_adapter_mongo::{
    MongoOptions, MongoTransport, create_capped_collection, create_ttl_index,
};
use switchboard_testkit::{Backend, services::SecantusDb};

const COLLECTION: &str = "socket.io-adapter-events";

async fn client(db: &SecantusDb) -> Client {
    Client::with_uri_str(db.url())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", db.url()))
}

/// A cluster: one server, one collection, set up as the mode wants.
struct Mongo {
    db: SecantusDb,
    ttl: bool,
}

impl Mongo {
    async fn start(ttl: bool) -> Self {
        let db = SecantusDb::start();
        let database = client(&db).await.database("socketio");
        if ttl {
            let collection: Collection<Document> = database.collection(COLLECTION);
            create_ttl_index(&collection, Duration::from_secs(3600))
                .await
                .unwrap_or_else(|e| panic!("TTL index: {e}"));
        } else {
            create_capped_collection(&database, COLLECTION, 1_000_000)
                .await
                .unwrap_or_else(|e| panic!("capped collection: {e}"));
        }
        Mongo { db, ttl }
    }

    async fn transport(&self) -> MongoTransport {
        let collection = client(&self.db)
            .await
            .database("socketio")
            .collection(COLLECTION);
        MongoTransport::new(
            collection,
            MongoOptions::default()
                .add_created_at_field(self.ttl)
                .max_await_time(Duration::from_millis(100)),
        )
    }
}

/// Node's default: a capped collection.
struct Capped(Mongo);

impl Backend for Capped {
    type Transport = MongoTransport;
    async fn cluster() -> Self {
        Capped(Mongo::start(false).await)
    }
    async fn transport(&self) -> MongoTransport {
        self.0.transport().await
    }
    fn crash(t: &MongoTransport) {
        t.crash_for_tests();
    }
}

/// `addCreatedAtField` with a TTL index.
struct Ttl(Mongo);

impl Backend for Ttl {
    type Transport = MongoTransport;
    async fn cluster() -> Self {
        Ttl(Mongo::start(true).await)
    }
    async fn transport(&self) -> MongoTransport {
        self.0.transport().await
    }
    fn crash(t: &MongoTransport) {
        t.crash_for_tests();
    }
}

mod capped {
    switchboard_testkit::conformance_suite!(super::Capped, crash);
}

mod ttl {
    switchboard_testkit::conformance_suite!(super::Ttl, crash);
}
