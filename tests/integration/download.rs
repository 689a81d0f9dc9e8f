//! Expiring download links against a real nginx from Debian, spawned on 127.0.0.1: the link keypost mails in
//! `{download_url}` is served (200) while valid; an expired one gets 410 and a tampered one 403, all decided by
//! nginx's stock `secure_link` module with the product's secret.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};

use keypost::config::Loaded;
use keypost::order::{BuyerEmail, Recipient};
use keypost::reply::LicenseReply;
use keypost::reply::link::sign;

const SECRET: &str = "keypost-test-link-secret";
const FILE: &[u8] = b"the product's installer\n";

/// nginx on `port` serving `prefix/www/files/` behind `secure_link`; its logs, pid and temp files in `prefix`.
fn start_nginx(prefix: &Path, port: u16) -> Child {
    let nginx = crate::support::require("/usr/sbin/nginx", "nginx");
    std::fs::create_dir_all(prefix.join("www/files")).unwrap();
    std::fs::create_dir_all(prefix.join("logs")).unwrap();
    std::fs::write(prefix.join("www/files/acme-pro.zip"), FILE).unwrap();
    // Tests run as root (like CI), so nginx's workers run as nobody: they must be able to read the files.
    for path in [prefix.to_owned(), prefix.join("www"), prefix.join("www/files")] {
        crate::support::set_mode(&path, 0o755);
    }
    crate::support::set_mode(&prefix.join("www/files/acme-pro.zip"), 0o644);
    let p = prefix.display();
    let conf = format!(
        "worker_processes 1;\nerror_log {p}/logs/error.log;\npid {p}/nginx.pid;\nevents {{ worker_connections 16; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {p}/tmp-body;\n  proxy_temp_path {p}/tmp-proxy;\n\
         fastcgi_temp_path {p}/tmp-fcgi;\n  uwsgi_temp_path {p}/tmp-uwsgi;\n  scgi_temp_path {p}/tmp-scgi;\n\
         server {{\n    listen 127.0.0.1:{port};\n    root {p}/www;\n    location /files/ {{\n\
         secure_link $arg_md5,$arg_expires;\n      secure_link_md5 \"$secure_link_expires$uri {SECRET}\";\n\
         if ($secure_link = \"\") {{ return 403; }}\n      if ($secure_link = \"0\") {{ return 410; }}\n    }}\n  }}\n}}\n"
    );
    std::fs::write(prefix.join("nginx.conf"), conf).unwrap();
    let mut child = Command::new(nginx)
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .args(["-e", "stderr", "-g", "daemon off;"])
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(prefix.join("logs/error.log")).unwrap_or_default();
    assert!(crate::support::wait_listening(port, &mut child), "nginx did not start: {}", log());
    child
}

/// The status code and body of `GET url` (HTTP/1.0, loopback only).
fn get(url: &str) -> (u16, Vec<u8>) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = TcpStream::connect(host).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response);
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body_at = text.find("\r\n\r\n").map_or(response.len(), |at| at + 4);
    (status, response[body_at..].to_vec())
}

/// The `{download_url}` of a reply rendered from a config whose product signs its download link.
fn mailed_link(dir: &Path, url: &str) -> String {
    let text = format!(
        "[reply]\nfrom = \"Acme <licenses@acme.example>\"\nvendor = \"boss@acme.example\"\n\
         [reply.template]\nsubject = \"Your licence\"\ntext = \"Download: <{{download_url}}>\\n\"\n\
         [[product]]\nid = \"pro\"\nname = \"Acme Pro\"\ndownload_url = \"{url}\"\n\
         download_link = {{ secret = {{ inline = \"{SECRET}\" }}, days = 3 }}\n\
         serial = {{ product_code = 1, key = {{ inline = \"keypost-test-key\" }} }}\n"
    );
    std::fs::write(dir.join("keypost.toml"), text).unwrap();
    let loaded: Loaded = keypost::config::load(&dir.join("keypost.toml")).unwrap();
    let renderer = keypost::daemon::build::renderer(&loaded).unwrap();
    let buyer = BuyerEmail::parse("asa@example.com").unwrap();
    let reply = LicenseReply {
        provider: "paypal",
        order_id: "A-1",
        line: 0,
        product: "pro",
        licensee: "Åsa Öberg",
        serial: "K1AA",
        seats: 1,
        buyer_name: None,
        buyer_email: &buyer,
        recipient: Recipient::Buyer,
        expires: None,
        renewal: false,
        resend: 0,
    };
    let (message, _) = renderer.license(&reply).unwrap();
    let parsed = mail_parser::MessageParser::default().parse(&message.bytes).unwrap();
    let body = parsed.body_text(0).unwrap().into_owned();
    let start = body.find("Download: <").unwrap() + "Download: <".len();
    body[start..].split('>').next().unwrap().to_owned()
}

#[test]
fn nginx_serves_a_mailed_link_and_refuses_it_expired_or_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let mut nginx = start_nginx(dir.path(), port);
    let url = format!("http://127.0.0.1:{port}/files/acme-pro.zip");

    let link = mailed_link(dir.path(), &url);
    assert!(link.starts_with(&format!("{url}?md5=")) && link.contains("&expires="), "{link}");
    let expires: i64 = link.rsplit("&expires=").next().unwrap().parse().unwrap();
    let in_three_days = time::OffsetDateTime::now_utc().unix_timestamp() + 3 * 86_400;
    assert!((in_three_days - 60..=in_three_days).contains(&expires), "expires {expires}");
    assert_eq!(get(&link), (200, FILE.to_vec()), "a valid link");

    let an_hour_ago = time::OffsetDateTime::now_utc().unix_timestamp() - 3600;
    let expired = sign(&url, SECRET, an_hour_ago).unwrap();
    assert_eq!(get(&expired).0, 410, "an expired link: {expired}");

    let later = link.replace(&format!("expires={expires}"), &format!("expires={}", expires + 86_400));
    assert_eq!(get(&later).0, 403, "a link whose expiry was pushed back: {later}");
    let other_file = link.replace("acme-pro.zip", "acme-team.zip");
    assert_eq!(get(&other_file).0, 403, "the link's hash on another file");
    let wrong_secret = sign(&url, "guessed", expires).unwrap();
    assert_eq!(get(&wrong_secret).0, 403, "a link signed with another secret");

    stop_nginx(dir.path(), &mut nginx);
}

/// `nginx -s quit` through its pid file, so the master takes its worker with it; then reaps the child.
fn stop_nginx(prefix: &Path, child: &mut Child) {
    let conf = prefix.join("nginx.conf");
    let _ = Command::new("/usr/sbin/nginx").arg("-p").arg(prefix).arg("-c").arg(&conf).args(["-s", "quit"]).status();
    crate::support::stop_child(child);
}

#[test]
fn a_download_link_without_a_url_or_with_bad_days_is_reported_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[reply]\nfrom = \"licenses@acme.example\"\nvendor = \"boss@acme.example\"\n\
         [[product]]\nid = \"a\"\nname = \"A\"\ndownload_link = { secret = { inline = \"s\" } }\n\
         serial = { product_code = 1, key = { inline = \"keypost-test-key\" } }\n\
         [[product]]\nid = \"b\"\nname = \"B\"\ndownload_url = \"https://dl.example/b%20c.zip\"\n\
         download_link = { secret = { env = \"KEYPOST_IT_NEVER_SET\" }, days = 0 }\n\
         serial = { product_code = 2, key = { inline = \"keypost-test-key\" } }\n";
    std::fs::write(dir.path().join("keypost.toml"), text).unwrap();
    let loaded = keypost::config::load(&dir.path().join("keypost.toml")).unwrap();
    let err = keypost::daemon::build::renderer(&loaded).unwrap_err();
    let keys: Vec<&str> = err.0.iter().map(|p| p.key.as_str()).collect();
    let expected = [
        "product[0].download_link",
        "product[1].download_url",
        "product[1].download_link.days",
        "product[1].download_link.secret",
    ];
    assert_eq!(keys, expected);
}
