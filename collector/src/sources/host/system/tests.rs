use proptest::prelude::*;

use super::*;

#[test]
fn parses_file_nr() {
    assert_eq!(file_nr(b"2520\t0\t2466170\n"), Some((2520, 2466170)));
    assert_eq!(file_nr(b"2520 0\n"), None);
    assert_eq!(file_nr(b"x 0 1\n"), None);
}

#[test]
fn uname_is_this_kernel() {
    let mut u = Uname::default();
    assert!(u.refresh());
    assert_eq!(u.sysname, "Linux");
    assert!(!u.release.is_empty() && !u.machine.is_empty());
    let before = u.clone();
    assert!(u.refresh());
    assert_eq!(u, before);
}

proptest! {
    #[test]
    fn garbage_file_nr_never_panics(s in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = file_nr(&s);
    }
}
