//! A folder of `.eml` files as a [`super::Mailer`]: the embedded default and a dry run.
