//! The collection setups @socket.io/mongo-adapter's README shows: a capped collection, or a TTL
//! index on `createdAt`. Both can be run at every start.

use std::time::Duration;

use mongodb::{
    Collection, Database, IndexModel,
    bson::{Document, doc},
    error::{Error, ErrorKind},
    options::IndexOptions,
};

/// MongoDB's code for "collection already exists".
const NAMESPACE_EXISTS: i32 = 48;

/// Creates the capped collection `name` of `size` bytes (Node's README: `{capped: true, size:
/// 1e6}`) and returns it; an existing collection of that name is kept as it is.
pub async fn create_capped_collection(
    db: &Database,
    name: &str,
    size: u64,
) -> Result<Collection<Document>, Error> {
    match db.create_collection(name).capped(true).size(size).await {
        Ok(()) => {}
        Err(e) if matches!(*e.kind, ErrorKind::Command(ref c) if c.code == NAMESPACE_EXISTS) => {}
        Err(e) => return Err(e),
    }
    Ok(db.collection(name))
}

/// Creates the TTL index `{createdAt: 1}` with `expire_after` (Node's README: 3600 s), for a
/// transport with `add_created_at_field(true)`; an identical index already there is fine.
pub async fn create_ttl_index(
    collection: &Collection<Document>,
    expire_after: Duration,
) -> Result<(), Error> {
    let index = IndexModel::builder()
        .keys(doc! {"createdAt": 1})
        .options(IndexOptions::builder().expire_after(expire_after).build())
        .build();
    collection.create_index(index).await.map(drop)
}
