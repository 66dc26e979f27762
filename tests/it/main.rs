//! Integration tests: the real `sockit` binary against real sockets and peers.

mod util;

mod chat;
mod chat_cluster;
mod chat_hardening;
mod chat_history;
mod chat_irc;
mod chat_irc_clients;
mod chat_irc_conformance;
mod chat_irc_history;
mod chat_irc_tags;
mod chat_join;
mod chat_web;
mod conn_hardening;
mod endpoints;
mod errors;
mod habits;
mod habits_help;
mod habits_verbose;
mod http;
mod http_dial_hardening;
mod http_framing;
mod http_habits;
mod http_hardening;
mod http_output_hardening;
mod http_upload;
mod interop;
mod limits;
mod mtls;
mod peers;
mod ping;
mod ping_habits;
mod proxy;
mod proxy_https;
mod proxy_socks4a;
mod serve_hardening;
mod services;
mod tls;

mod smoke {
    use crate::util::*;

    #[test]
    fn tcp_round_trip_and_exit_code() {
        let (mut l, addr) = listen(&["127.0.0.1:0"]);
        l.close_stdin();
        let out = run(&["connect", &addr], b"ping\n");
        assert!(out.status.success());
        l.wait_stdout(b"ping\n");
        let (st, _, _) = l.wait_exit();
        assert!(st.success());
    }
}
mod chat_cluster_gaps;
mod chat_cluster_history;
mod chat_cluster_nats3;
mod chat_cluster_reconnect;
mod relay_seqpacket_batch;
