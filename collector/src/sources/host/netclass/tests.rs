use proptest::prelude::*;

use super::*;

#[test]
fn parses_speed_and_flags_like_node_exporter() {
    assert_eq!(speed_bytes(b"1000\n"), Some(125_000_000));
    assert_eq!(speed_bytes(b"-1\n"), None, "unknown speed is left out");
    assert_eq!(speed_bytes(b""), None);
    assert_eq!(adminstate(b"0x1003\n"), "up");
    assert_eq!(adminstate(b"0x1002\n"), "down");
    assert_eq!(adminstate(b"zz\n"), "unknown");
    assert_eq!(text(b"up\n"), "up");
}

proptest! {
    #[test]
    fn garbage_attributes_never_panic(s in proptest::collection::vec(any::<u8>(), 0..40)) {
        let _ = speed_bytes(&s);
        let _ = adminstate(&s);
        let _ = text(&s);
    }
}
