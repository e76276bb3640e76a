//! What the suite carries inside its binary, so that an installed
//! `conformance` runs from any directory: the repository's scenarios and the
//! fixtures they publish and replay (`fixtures/flv`, `fixtures/captures`),
//! embedded at build time by `build.rs`.
//!
//! A run may add directories of its own (`--scenarios DIR`, `--fixtures
//! DIR`); [`Fixtures`] looks a file up there first.

use std::path::{Path, PathBuf};

use bytes::Bytes;

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// Where a run finds the fixture files scenarios name (`flv/...`,
/// `captures/...`): its own directories first, then the built-in files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fixtures {
    /// Searched in order before the built-in files.
    pub dirs: Vec<PathBuf>,
}

impl Fixtures {
    /// The built-in files and these directories.
    pub fn with_dirs(dirs: Vec<PathBuf>) -> Fixtures {
        Fixtures { dirs }
    }

    /// The bytes of fixture `name`, or why not.
    pub fn read(&self, name: &str) -> Result<Bytes, String> {
        for dir in &self.dirs {
            let path = dir.join(name);
            if path.is_file() {
                return std::fs::read(&path)
                    .map(Bytes::from)
                    .map_err(|e| format!("{}: {e}", path.display()));
            }
        }
        builtin(name).map(Bytes::from_static).ok_or_else(|| {
            let searched: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
            if searched.is_empty() {
                format!("no fixture {name:?} is built in")
            } else {
                format!("no fixture {name:?} in {} or built in", searched.join(", "))
            }
        })
    }
}

/// A built-in fixture's bytes.
pub fn builtin(name: &str) -> Option<&'static [u8]> {
    let name = Path::new(name).to_str()?.trim_start_matches("./");
    FIXTURES
        .binary_search_by(|(n, _)| n.cmp(&name))
        .ok()
        .map(|at| FIXTURES[at].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_come_from_the_run_s_directories_first_then_the_binary() {
        let flv = "flv/ffmpeg_h264_aac_320x240_440hz.flv";
        let on_disk = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(flv)).unwrap();
        assert_eq!(Fixtures::default().read(flv).unwrap(), on_disk);
        let dir = std::env::temp_dir().join(format!("fixtures-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("flv")).unwrap();
        std::fs::write(dir.join(flv), b"mine").unwrap();
        let mine = Fixtures::with_dirs(vec![dir.clone()]);
        assert_eq!(mine.read(flv).unwrap(), &b"mine"[..]);
        let pcap = "captures/obs_publish_to_nginx.pcap";
        let pcap_on_disk = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(pcap)).unwrap();
        assert_eq!(mine.read(pcap).unwrap(), pcap_on_disk, "not in the directory: built in");
        let missing = mine.read("flv/none.flv").unwrap_err();
        assert!(
            missing.contains("none.flv") && missing.contains(&dir.display().to_string()),
            "{missing}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
