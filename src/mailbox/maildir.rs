//! A local Maildir as a [`super::Source`]: `new/` is the queue; settled messages move to subfolders.
