//! The loops: `poll_once()` processes what is waiting and returns an outcome; `run` is a thin wrapper.
