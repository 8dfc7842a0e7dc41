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
