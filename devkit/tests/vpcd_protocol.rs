//! The vpcd bridge over a real TCP socket, with this test playing vpcd: framing split across
//! writes and batched in one write, control codes at any time, reconnection when the driver
//! side goes away (what a pcscd restart looks like), and a clean stop.
// Helpers outside #[test] functions panic on purpose: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kiosk_devkit::softcard::ATR;
use kiosk_devkit::vpcd::Emulator;

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut body).unwrap();
    body
}

const SELECT_JPKI: [u8; 15] = [
    0x00, 0xA4, 0x04, 0x0C, 0x0A, 0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01,
];

fn sw(reply: &[u8]) -> [u8; 2] {
    reply[reply.len() - 2..].try_into().unwrap()
}

#[test]
fn framing_control_codes_reconnect_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let card = dir.path().join("card.toml");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/pki/cards/resident-0001.toml"
        ),
        &card,
    )
    .unwrap();
    let vpcd = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = vpcd.local_addr().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let mut emulator = Emulator::new(&addr, &card).unwrap();
    let thread_stop = Arc::clone(&stop);
    let handle = std::thread::spawn(move || emulator.run(&thread_stop));

    let (mut s, _) = vpcd.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // ATR request, answered at once; power on gets no reply.
    s.write_all(&frame(&[0x04])).unwrap();
    assert_eq!(read_frame(&mut s), ATR);
    s.write_all(&frame(&[0x01])).unwrap();
    // One APDU split over three writes.
    let select = frame(&SELECT_JPKI);
    s.write_all(&select[..1]).unwrap();
    s.flush().unwrap();
    s.write_all(&select[1..7]).unwrap();
    s.flush().unwrap();
    s.write_all(&select[7..]).unwrap();
    assert_eq!(read_frame(&mut s), [0x90, 0x00]);
    // Three messages in one write: SELECT PIN EF, ATR request, wrong PIN.
    let mut batch = frame(&[0x00, 0xA4, 0x02, 0x0C, 0x02, 0x00, 0x18]);
    batch.extend(frame(&[0x04]));
    batch.extend(frame(&[
        0x00, 0x20, 0x00, 0x80, 0x04, b'0', b'0', b'0', b'0',
    ]));
    s.write_all(&batch).unwrap();
    assert_eq!(read_frame(&mut s), [0x90, 0x00]);
    assert_eq!(read_frame(&mut s), ATR);
    assert_eq!(sw(&read_frame(&mut s)), [0x63, 0xC2]);
    // The counter was written back to the card file.
    let saved = kiosk_devkit::softcard::CardFile::load(&card).unwrap();
    assert_eq!(saved.auth.unwrap().tries_left, 2);
    // Verify, then reset: the security state is gone.
    s.write_all(&frame(&[
        0x00, 0x20, 0x00, 0x80, 0x04, b'1', b'2', b'3', b'4',
    ]))
    .unwrap();
    assert_eq!(read_frame(&mut s), [0x90, 0x00]);
    s.write_all(&frame(&[0x02])).unwrap();
    s.write_all(&frame(&SELECT_JPKI)).unwrap();
    assert_eq!(read_frame(&mut s), [0x90, 0x00]);
    s.write_all(&frame(&[0x00, 0xA4, 0x02, 0x0C, 0x02, 0x00, 0x17]))
        .unwrap();
    assert_eq!(read_frame(&mut s), [0x90, 0x00]);
    let mut sign = vec![0x80, 0x2A, 0x00, 0x80, 51];
    sign.extend([0x30; 51]);
    sign.push(0);
    s.write_all(&frame(&sign)).unwrap();
    assert_eq!(read_frame(&mut s), [0x69, 0x82]);

    // The driver goes away (pcscd restart): the emulator connects again by itself.
    drop(s);
    let (mut s, _) = vpcd.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&frame(&[0x04])).unwrap();
    assert_eq!(read_frame(&mut s), ATR);
    // A fresh connection is a fresh card: EFs need the AP selected first.
    s.write_all(&frame(&[0x00, 0xA4, 0x02, 0x0C, 0x02, 0x00, 0x0A]))
        .unwrap();
    assert_eq!(read_frame(&mut s), [0x6A, 0x82]);

    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap().unwrap();
    // After the stop the emulator closed its end.
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn missing_card_file_is_an_error_not_a_panic() {
    let e = Emulator::new(
        "127.0.0.1:1",
        std::path::Path::new("/nonexistent/card.toml"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("card file"), "{e}");
}

#[test]
fn card_emulator_binary_exit_codes() {
    let bin = env!("CARGO_BIN_EXE_card-emulator");
    let usage = std::process::Command::new(bin)
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(64));
    let missing = std::process::Command::new(bin)
        .args(["--vpcd", "127.0.0.1:1", "--card", "/nonexistent/card.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("card file"));
}
