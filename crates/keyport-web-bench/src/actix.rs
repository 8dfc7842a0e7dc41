//! The hello-world app on Actix-web, bare or behind `KeyportMiddleware`.

use std::{net::SocketAddr, thread};

use actix_web::{App, HttpServer, rt::System, web};
use keyport_actix::KeyportMiddleware;
use keyport_client::web::Guard;

use crate::BoxError;

/// Serves `/hello` (and `/public`) on a free port from a thread of its own (Actix runs its
/// own system), behind the middleware when `guard` is given.
pub(crate) fn serve(guard: Option<Guard>) -> Result<SocketAddr, BoxError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    thread::Builder::new().name(format!("actix-{addr}")).spawn(move || {
        System::new().block_on(async move {
            let hello = || web::get().to(|| async { "hello" });
            let server = match guard {
                Some(guard) => HttpServer::new(move || {
                    App::new()
                        .wrap(KeyportMiddleware::new(guard.clone()))
                        .route("/hello", hello())
                        .route("/public", hello())
                })
                .workers(workers)
                .disable_signals()
                .listen(listener)
                .map(HttpServer::run),
                None => HttpServer::new(move || App::new().route("/hello", hello()).route("/public", hello()))
                    .workers(workers)
                    .disable_signals()
                    .listen(listener)
                    .map(HttpServer::run),
            };
            if let Ok(server) = server {
                let _ = server.await;
            }
        });
    })?;
    Ok(addr)
}

/// Mean time for Actix to answer one `GET /hello` in process (no socket,
/// no parsing): bare, behind Actix's own `from_fn` middleware passing every
/// request on (the cost of any middleware at all), and behind
/// `KeyportMiddleware` with `guard`. The three are timed in turn, `rounds`
/// times; each gets its fastest round, the one the machine disturbed least.
pub(crate) fn time_in_process(
    guard: Guard,
    header: (&str, &str),
    iterations: u32,
    rounds: usize,
) -> [std::time::Duration; 3] {
    use actix_web::{middleware, test};
    System::new().block_on(async move {
        let app = || App::new().route("/hello", web::get().to(|| async { "hello" }));
        let request = || test::TestRequest::get().uri("/hello").insert_header(header).to_request();
        let pass = |request, next: middleware::Next<_>| async move { next.call(request).await };
        let bare = test::init_service(app()).await;
        let passing = test::init_service(app().wrap(middleware::from_fn(pass))).await;
        let guarded = test::init_service(app().wrap(KeyportMiddleware::new(guard))).await;
        let mut fastest = [std::time::Duration::MAX; 3];
        for _ in 0..rounds {
            let times = [
                time_calls(iterations, || test::call_service(&bare, request())).await,
                time_calls(iterations, || test::call_service(&passing, request())).await,
                time_calls(iterations, || test::call_service(&guarded, request())).await,
            ];
            for (fastest, time) in fastest.iter_mut().zip(times) {
                *fastest = (*fastest).min(time);
            }
        }
        fastest
    })
}

async fn time_calls<F, R>(iterations: u32, mut call: impl FnMut() -> F) -> std::time::Duration
where
    F: std::future::Future<Output = R>,
{
    for _ in 0..1_000 {
        std::hint::black_box(call().await);
    }
    let start = std::time::Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(call().await);
    }
    start.elapsed() / iterations
}
