//! The Tokio peer of the TCP echo benchmark (issue 5, docs/bench.md): a
//! current-thread runtime, a task per connection doing read / write_all.
//!
//!   echo_tokio   listens on 127.0.0.1, a port the system picks, prints
//!                "port N" and serves until killed
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn serve(mut sock: tokio::net::TcpStream) {
    let _ = sock.set_nodelay(true);
    let mut buf = vec![0u8; 16384];
    loop {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if sock.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let ln = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("port {}", ln.local_addr().expect("addr").port());
        loop {
            if let Ok((sock, _)) = ln.accept().await {
                tokio::spawn(serve(sock));
            }
        }
    });
}
