//! A loopback TCP proxy that a test can cut and restore, to play a server that dies
//! and comes back (Redis, PostgreSQL) without stopping the shared one, or to play
//! nginx moving traffic from one instance to another.
//!
//! `cut()` resets every open connection (RST, as a killed server's kernel would) and
//! resets each new one at once until `restore()`; `retarget()` sends new connections
//! elsewhere. Dropping the proxy stops it and its connections.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct FaultProxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    acceptor: JoinHandle<()>,
}

struct Shared {
    target: Mutex<SocketAddr>,
    /// Bumped by every cut: a connection opened in an older generation is reset.
    generation: watch::Sender<u64>,
    open: Mutex<bool>,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and forwards to `target`.
    pub async fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the fault proxy binds");
        let address = listener.local_addr().expect("bound");
        let (generation, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            target: Mutex::new(target),
            generation,
            open: Mutex::new(true),
        });
        let acceptor = tokio::spawn(accept(listener, shared.clone()));
        FaultProxy {
            address,
            shared,
            acceptor,
        }
    }

    /// A proxy in front of the host and port of `url` (`redis://…`, `postgres://…`),
    /// and `url` rewritten to go through it.
    pub async fn in_front_of(url: &str) -> (FaultProxy, String) {
        let mut parsed = url::Url::parse(url).expect("a URL with a host");
        let host = parsed.host_str().expect("a host").to_owned();
        let port = parsed.port().expect("an explicit port");
        let target = tokio::net::lookup_host((host.as_str(), port))
            .await
            .expect("the host resolves")
            .next()
            .expect("an address");
        let proxy = FaultProxy::start(target).await;
        parsed.set_host(Some("127.0.0.1")).expect("host");
        parsed.set_port(Some(proxy.address.port())).expect("port");
        (proxy, parsed.to_string())
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Resets every open connection and every new one until [`Self::restore`].
    pub fn cut(&self) {
        *self
            .shared
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = false;
        self.shared
            .generation
            .send_modify(|generation| *generation += 1);
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        *self
            .shared
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
    }

    /// New connections go to `target`; open ones stay where they are.
    pub fn retarget(&self, target: SocketAddr) {
        *self
            .shared
            .target
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = target;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        // Connections watch the generation: one more cut ends them all.
        self.cut();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        let open = *shared.open.lock().unwrap_or_else(PoisonError::into_inner);
        if !open {
            reset(&inbound);
            continue;
        }
        let target = *shared.target.lock().unwrap_or_else(PoisonError::into_inner);
        let generation = shared.generation.subscribe();
        tokio::spawn(forward(inbound, target, generation));
    }
}

async fn forward(mut inbound: TcpStream, target: SocketAddr, mut generation: watch::Receiver<u64>) {
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        reset(&inbound);
        return;
    };
    let born = *generation.borrow_and_update();
    let cut = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
        _ = generation.wait_for(|now| *now != born) => true,
    };
    if cut {
        reset(&inbound);
        reset(&outbound);
    }
}

/// Closing with a zero linger sends RST: the peer sees "connection reset", not a
/// polite end of stream.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}
