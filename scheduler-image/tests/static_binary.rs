//! The release binary is statically linked (it runs on distroless/static or scratch), small,
//! and starts. Build it first with `scheduler-image/build-static.sh` (CI does); without it the
//! release check fails saying so, unless `DATAJUMP_SKIP_STATIC_BINARY=1` (then it says
//! "skipped"). The ELF reader itself is checked on this (dynamic) test binary.

use std::path::PathBuf;
use std::process::Command;

const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const MAX_BINARY_BYTES: u64 = 25 * 1000 * 1000;

/// What matters about linking, read from the ELF64 little-endian program headers.
#[derive(Debug, PartialEq, Eq)]
struct Linking {
    /// A PT_INTERP header: the kernel must load a dynamic loader (ld-linux) first.
    interpreter: bool,
    /// DT_NEEDED entries: shared libraries required at run time.
    needed_libraries: usize,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

fn inspect(bytes: &[u8]) -> Linking {
    assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
    assert_eq!((bytes[4], bytes[5]), (2, 1), "expected ELF64 little-endian");
    let phoff = u64_at(bytes, 0x20) as usize;
    let phentsize = u16_at(bytes, 0x36) as usize;
    let phnum = u16_at(bytes, 0x38) as usize;
    let mut linking = Linking {
        interpreter: false,
        needed_libraries: 0,
    };
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        match u32_at(bytes, ph) {
            PT_INTERP => linking.interpreter = true,
            // A static-pie binary has a dynamic section (for self-relocation) but needs nothing.
            PT_DYNAMIC => {
                let (offset, size) = (
                    u64_at(bytes, ph + 8) as usize,
                    u64_at(bytes, ph + 32) as usize,
                );
                for entry in bytes[offset..offset + size].chunks_exact(16) {
                    match u64_at(entry, 0) {
                        DT_NULL => break,
                        DT_NEEDED => linking.needed_libraries += 1,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    linking
}

fn release_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("DATAJUMP_SCHEDULER_BIN") {
        return Some(PathBuf::from(path));
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let path = target_dir.join(triple).join("release/datajump-scheduler");
    path.exists().then_some(path)
}

#[test]
fn the_elf_reader_sees_a_dynamic_executable() {
    let me = std::env::current_exe().expect("test binary path");
    let linking = inspect(&std::fs::read(me).expect("read test binary"));
    assert!(linking.interpreter, "{linking:?}");
    assert!(linking.needed_libraries > 0, "{linking:?}");
}

#[test]
fn the_release_binary_is_static_small_and_starts() {
    let Some(bin) = release_binary() else {
        let why = "no static release binary: run `bash scheduler-image/build-static.sh` first";
        if std::env::var("DATAJUMP_SKIP_STATIC_BINARY").as_deref() != Ok("1") {
            panic!("{why}, or set DATAJUMP_SKIP_STATIC_BINARY=1 to skip this check");
        }
        println!("skipped: {why} (DATAJUMP_SKIP_STATIC_BINARY=1)");
        return;
    };
    let bytes = std::fs::read(&bin).expect("read release binary");
    assert_eq!(
        inspect(&bytes),
        Linking {
            interpreter: false,
            needed_libraries: 0
        },
        "{} is dynamically linked",
        bin.display()
    );
    let size = bytes.len() as u64;
    println!("{}: {size} bytes", bin.display());
    assert!(
        size < MAX_BINARY_BYTES,
        "{size} bytes exceeds the 25 MB budget"
    );

    let version = Command::new(&bin)
        .arg("--version")
        .output()
        .expect("run --version");
    assert!(version.status.success());
    let text = String::from_utf8_lossy(&version.stdout);
    assert_eq!(
        text.trim(),
        format!("datajump-scheduler {}", env!("CARGO_PKG_VERSION"))
    );

    let help = Command::new(&bin)
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "DATAJUMP_HTTP_ADDR",
        "DATAJUMP_LEADER_ELECTION",
        "DATAJUMP_MAX_RUNNING_TASKS",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}:\n{text}");
    }
}
