//! Plimsoll collector.
