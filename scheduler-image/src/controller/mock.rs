//! kube's mock client (tower-test) for the tests of the API edges: a client whose requests a
//! test answers by hand.

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use tower_test::mock;

/// The test's end of the mock client.
pub(super) type Handle = mock::Handle<Request<Body>, Response<Body>>;

/// A client and the handle that receives its requests.
pub(super) fn mock_client() -> (Client, Handle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// A Kubernetes `Status` answer with `code` and `reason`.
pub(super) fn status(code: u16, reason: &str) -> Response<Body> {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": reason, "reason": reason, "code": code,
    });
    Response::builder()
        .status(code)
        .body(Body::from(serde_json::to_vec(&body).expect("json")))
        .expect("response")
}

/// A 200 answer with `value`.
pub(super) fn ok(value: serde_json::Value) -> Response<Body> {
    Response::builder()
        .body(Body::from(serde_json::to_vec(&value).expect("json")))
        .expect("response")
}

/// The next request: method, URI, JSON body, and where to send the answer.
pub(super) async fn next(
    handle: &mut Handle,
) -> (
    String,
    String,
    serde_json::Value,
    mock::SendResponse<Response<Body>>,
) {
    let (req, send) = handle.next_request().await.expect("a request");
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let bytes = req.into_body().collect_bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (method, uri, body, send)
}
