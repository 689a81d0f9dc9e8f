//! An IMAP folder as a [`super::Source`]: IDLE with a hard deadline, polling as fallback, MOVE to folders.
