//! The scheduler's log archive client against moto (the S3 server the tests use, with IAM
//! enforcement on, so every request's SigV4 signature is checked by a real implementation): a
//! small log is one PUT, a log larger than a part is a multipart upload whose object is byte
//! for byte what was streamed in, keys follow `<prefix>/<ns>/<workflow>/<run>/<task>/<attempt>.log`,
//! a missing log reads as none, and a wrong key is refused with S3's answer.

use datajump_scheduler::archive::sigv4::Credentials;
use datajump_scheduler::archive::{
    Bucket, CredentialSource, LogArchive, LogKey, PART_SIZE, S3Error,
};
use datajump_tests::s3::S3Server;
use futures::TryStreamExt;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

const BUCKET: &str = "task-logs";

/// `len` bytes of log lines (numbered, so a lost or repeated part changes the checksum).
fn log_of(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!("line {i:09} of a task's log, padded to look real\n").as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

fn bucket(s3: &S3Server, secret: &str) -> Bucket {
    let credentials = CredentialSource::Fixed(Credentials {
        access_key: s3.access_key.clone(),
        secret_key: secret.to_string(),
    });
    Bucket::new(&s3.endpoint(), BUCKET, "us-east-1", credentials, None).expect("bucket")
}

/// Reads an archived log back through the archive's own streaming read.
async fn read_back(archive: &LogArchive, key: &LogKey) -> Option<Vec<u8>> {
    let (_, body) = archive.open(key).await.expect("open")?;
    let bytes = body.collect().await.expect("the object's body").to_bytes();
    Some(bytes.to_vec())
}

#[tokio::test]
async fn logs_stream_into_moto_whole_and_in_parts_under_their_keys() {
    let Some(moto) = S3Server::locate_or_skip("log_archive_s3").expect("moto") else {
        return;
    };
    let s3 = S3Server::start(&moto).expect("start moto");
    s3.create_bucket(BUCKET).expect("bucket");
    let archive = LogArchive::with_bucket(bucket(&s3, &s3.secret_key), "datajump/dev/");

    // A short log: one PUT, under the prefix and the attempt's path.
    let key = LogKey::new("data", "etl", "etl-1", "extract", 1).expect("key");
    let small = log_of(1000);
    let stored = archive.store(&key, &small[..]).await.expect("store");
    assert_eq!(stored, 1000);
    assert_eq!(
        s3.get(BUCKET, "datajump/dev/data/etl/etl-1/extract/1.log")
            .expect("get"),
        small
    );
    assert_eq!(
        archive.url(&key),
        "s3://task-logs/datajump/dev/data/etl/etl-1/extract/1.log"
    );

    // Two and a half parts: a multipart upload whose object is exactly the stream.
    let key = LogKey::new("data", "etl", "etl-1", "load", 2).expect("key");
    let big = log_of(PART_SIZE * 5 / 2);
    let stored = archive
        .store(
            &key,
            futures::io::AllowStdIo::new(std::io::Cursor::new(big.clone())),
        )
        .await
        .expect("store in parts");
    assert_eq!(stored, big.len() as u64);
    let object = s3
        .get(BUCKET, "datajump/dev/data/etl/etl-1/load/2.log")
        .expect("get");
    assert_eq!(object.len(), big.len());
    assert_eq!(Sha256::digest(&object), Sha256::digest(&big));
    let streamed = read_back(&archive, &key).await.expect("stored");
    assert_eq!(Sha256::digest(&streamed), Sha256::digest(&big));

    // An empty log is an empty object, not an error; a log never stored reads as none.
    let key = LogKey::new("data", "etl", "etl-1", "quiet", 1).expect("key");
    assert_eq!(archive.store(&key, &b""[..]).await.expect("store"), 0);
    assert_eq!(read_back(&archive, &key).await, Some(Vec::new()));
    let never = LogKey::new("data", "etl", "etl-1", "never", 1).expect("key");
    assert!(archive.open(&never).await.expect("open").is_none());

    // A wrong secret: refused by S3, with what was attempted and S3's answer.
    let wrong = LogArchive::with_bucket(bucket(&s3, "not-the-secret"), "");
    let err = wrong
        .store(&key, &small[..])
        .await
        .expect_err("a bad signature is refused");
    assert!(matches!(err, S3Error::Refused { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("storing s3://task-logs/data/etl/etl-1/quiet/1.log"),
        "{err}"
    );

    // A stream that fails midway fails the upload (no partial object left as the log).
    let key = LogKey::new("data", "etl", "etl-1", "broken", 1).expect("key");
    let first = log_of(PART_SIZE + 10);
    let failing = futures::stream::iter(vec![
        Ok(first),
        Err(std::io::Error::other("the kubelet went away")),
    ])
    .into_async_read();
    let err = archive
        .store(&key, failing)
        .await
        .expect_err("a broken log");
    assert!(err.to_string().contains("the kubelet went away"), "{err}");
    assert!(archive.open(&key).await.expect("open").is_none());
}
