//! gRPC-web over HTTP/1.1: a client that sends an oversized request still
//! reads its `OUT_OF_RANGE`.
//!
//! tonic refuses a message past the limit as soon as it has read the length
//! prefix. Over HTTP/2 only that stream ends; over HTTP/1.1 hyper answers and
//! closes the connection with the rest of the body unread, so a client still
//! writing it (Node's, for one) gets `EPIPE` instead of the status. This
//! layer reads and throws away the rest first, up to [`DISCARD_LIMIT`] bytes,
//! never holding more than one chunk.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use futures::future::{BoxFuture, Either};
use http::{Request, Response, Version};
use http_body::{Body as _, Frame, SizeHint};
use tokio::sync::oneshot;
use tonic::body::Body;
use tower::{Layer, Service};

/// Most bytes of an oversized body read and discarded before answering;
/// past it the connection is closed as before. Reading is also bounded in
/// time by `request_timeout_ms`.
pub(crate) const DISCARD_LIMIT: usize = 16 * 1024 * 1024;

/// Discards the unread rest of refused HTTP/1.1 bodies; see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DiscardOversizedLayer;

impl<S> Layer<S> for DiscardOversizedLayer {
    type Service = DiscardOversized<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DiscardOversized { inner }
    }
}

/// The service of [`DiscardOversizedLayer`].
#[derive(Debug, Clone)]
pub(crate) struct DiscardOversized<S> {
    inner: S,
}

impl<S> Service<Request<Body>> for DiscardOversized<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response<Body>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if request.version() > Version::HTTP_11 {
            return Either::Left(self.inner.call(request));
        }
        let (parts, body) = request.into_parts();
        let (body, unread) = HandBack::new(body);
        let answer = self.inner.call(Request::from_parts(parts, Body::new(body)));
        Either::Right(Box::pin(async move {
            let response = answer.await?;
            if is_out_of_range(&response) {
                // tonic has dropped the body by now if it stopped reading it.
                let mut unread = unread;
                if let Ok(rest) = unread.try_recv() {
                    discard(rest).await;
                }
            }
            Ok(response)
        }))
    }
}

fn is_out_of_range(response: &Response<Body>) -> bool {
    response.headers().get("grpc-status").is_some_and(|status| status == "11")
}

async fn discard(mut body: Body) {
    let mut read = 0;
    while read <= DISCARD_LIMIT {
        match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, |data| data.len()),
            Some(Err(_)) | None => return,
        }
    }
    tracing::debug!(limit = DISCARD_LIMIT, "oversized request body not read to its end");
}

/// A body that, dropped before its end, hands what is left back through a
/// channel instead of dropping it.
struct HandBack<B> {
    body: Option<B>,
    to: Option<oneshot::Sender<B>>,
}

impl<B> HandBack<B> {
    fn new(body: B) -> (Self, oneshot::Receiver<B>) {
        let (to, from) = oneshot::channel();
        (Self { body: Some(body), to: Some(to) }, from)
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for HandBack<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        match self.body.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(|body| body.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.body.as_ref().map(|body| body.size_hint()).unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

impl<B> Drop for HandBack<B> {
    fn drop(&mut self) {
        if let (Some(body), Some(to)) = (self.body.take(), self.to.take()) {
            // No one waits unless the answer was OUT_OF_RANGE; then it is dropped.
            let _ = to.send(body);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use tonic::codegen::Bytes;

    use super::*;

    /// A client that never stops sending; counts the bytes taken from it.
    struct Endless(Arc<AtomicUsize>);

    impl http_body::Body for Endless {
        type Data = Bytes;
        type Error = tonic::Status;

        fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            const CHUNK: usize = 64 * 1024;
            self.0.fetch_add(CHUNK, Ordering::Relaxed);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&[0; CHUNK])))))
        }
    }

    #[tokio::test]
    async fn discarding_stops_at_the_limit() {
        let taken = Arc::new(AtomicUsize::new(0));
        discard(Body::new(Endless(taken.clone()))).await;
        let taken = taken.load(Ordering::Relaxed);
        assert!((DISCARD_LIMIT..=DISCARD_LIMIT + 64 * 1024).contains(&taken), "{taken}");
    }

    #[tokio::test]
    async fn a_body_dropped_early_is_handed_back() {
        let (body, mut unread) = HandBack::new(Body::new(Endless(Arc::default())));
        drop(body);
        assert!(unread.try_recv().is_ok());
    }
}
