//! Clean-up of what jobs and transfers leave behind: ended jobs past their retention
//! ([`crate::JobQueue::sweep`]) and staged files of a process that died before it could
//! remove them ([`remove_stale_files`]).

use std::path::Path;
use std::time::{Duration, SystemTime};

/// Removes the files directly in `dir` that were last modified more than `older_than`
/// ago (uploads and exports are staged there only while a request or a job uses them,
/// and removed when it ends; what is older was left by a process that died). Entries
/// that vanish meanwhile or cannot be read are skipped. Returns how many were removed.
///
/// # Errors
/// `dir` cannot be listed.
pub fn remove_stale_files(
    dir: &Path,
    older_than: Duration,
    now: SystemTime,
) -> std::io::Result<u64> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok());
        if age.is_some_and(|age| age > older_than) && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_older_than_the_limit_go() {
        let dir =
            std::env::temp_dir().join(format!("ptoc-cleanup-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("sub")).expect("create dirs");
        std::fs::write(dir.join("old.csv"), b"x").expect("write");
        std::fs::write(dir.join("new.csv"), b"y").expect("write");
        let now = SystemTime::now();
        let old = now - Duration::from_secs(3 * 3600);
        std::fs::File::options()
            .write(true)
            .open(dir.join("old.csv"))
            .and_then(|f| f.set_modified(old))
            .expect("backdate");
        let removed = remove_stale_files(&dir, Duration::from_secs(3600), now).expect("list");
        assert_eq!(removed, 1);
        assert!(!dir.join("old.csv").exists());
        assert!(dir.join("new.csv").exists());
        assert!(dir.join("sub").is_dir(), "directories are left alone");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
