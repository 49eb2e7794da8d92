//! `serve`: the tracked processes as Prometheus metrics over HTTP.
//!
//! Each scrape reads the segments anew (readers only read: no tracked
//! process is paused or signalled) and answers in the format the scraper
//! asks for (see `crate::exposition`). Segments stay mapped from one
//! scrape to the next. Requests are answered one at a time, in the order
//! they arrive.

use std::io::Write;

use tiny_http::{Header, Method, Response, Server};

use crate::cli::ServeArgs;
use crate::error::{CliError, CliResult};
use crate::exposition::{self, Dialect, Source};
use crate::service;

/// The body of one scrape in `dialect`. `cache` keeps the segments mapped
/// from one scrape to the next.
pub fn scrape(
    args: &ServeArgs,
    dialect: Dialect,
    cache: &mut tracker_shm::SegmentCache,
) -> CliResult<Vec<u8>> {
    let mut members = service::members_cached(cache, None);
    if !args.service.is_empty() {
        members.retain(|m| args.service.contains(&m.service));
    }
    let sources: Vec<Source<'_>> = members.iter().map(Source::of).collect();
    let mut body = Vec::with_capacity(64 << 10);
    exposition::write(
        &mut body,
        dialect,
        &sources,
        exposition::Options {
            top_k: args.top_k,
            pid_label: args.label_pid,
        },
    )?;
    Ok(body)
}

/// Sets `TCP_NODELAY` on the listening socket (accepted connections
/// inherit it): a response's last segment then leaves at once instead of
/// waiting for the scraper's delayed acknowledgement (tens of
/// milliseconds).
fn no_delay(listener: &std::net::TcpListener) {
    // A failure only costs latency.
    let _ = socket2::SockRef::from(listener).set_tcp_nodelay(true);
}

fn header(name: &str, value: &str) -> Header {
    // Both are ASCII constants of this module: they always parse.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

/// Runs `serve` until the process is stopped.
pub fn run(args: &ServeArgs, out: &mut dyn Write) -> CliResult<i32> {
    let cannot = |e: &dyn std::fmt::Display| {
        CliError::Usage(format!(
            "cannot listen on {}: {e} (give another --listen ADDR:PORT)",
            args.listen
        ))
    };
    let listener = std::net::TcpListener::bind(args.listen.as_str()).map_err(|e| cannot(&e))?;
    no_delay(&listener);
    let server = Server::from_listener(listener, None).map_err(|e| cannot(&e))?;
    let addr = server
        .server_addr()
        .to_ip()
        .map_or_else(|| args.listen.clone(), |a| a.to_string());
    writeln!(out, "serving http://{addr}/metrics")?;
    out.flush()?;
    let mut cache = tracker_shm::SegmentCache::default();
    for request in server.incoming_requests() {
        let path = request.url().split('?').next().unwrap_or("").to_string();
        let response = match (request.method(), path.as_str()) {
            (Method::Get | Method::Head, "/metrics") => {
                let accept = request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Accept"))
                    .map(|h| h.value.as_str().to_string());
                let dialect = Dialect::negotiate(accept.as_deref());
                match scrape(args, dialect, &mut cache) {
                    // The whole body is known: sent with its length, not in
                    // chunks (one copy fewer of megabytes).
                    Ok(body) => Response::from_data(body)
                        .with_chunked_threshold(usize::MAX)
                        .with_header(header("Content-Type", dialect.content_type())),
                    Err(e) => Response::from_string(format!("cannot read the segments: {e}\n"))
                        .with_status_code(500)
                        .with_header(header("Content-Type", "text/plain; charset=utf-8")),
                }
            }
            (Method::Get | Method::Head, "/") => {
                Response::from_string("pytracker-cli serve: the metrics are at /metrics\n")
                    .with_header(header("Content-Type", "text/plain; charset=utf-8"))
            }
            (Method::Get | Method::Head, _) => Response::from_string("not found: try /metrics\n")
                .with_status_code(404)
                .with_header(header("Content-Type", "text/plain; charset=utf-8")),
            _ => Response::from_string("only GET and HEAD are served\n")
                .with_status_code(405)
                .with_header(header("Allow", "GET, HEAD"))
                .with_header(header("Content-Type", "text/plain; charset=utf-8")),
        };
        // A scraper that went away is no reason to stop serving.
        let _ = request.respond(response);
    }
    Ok(0)
}
