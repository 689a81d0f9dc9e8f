//! Integration tests: arbitrary and mutated mail bytes through parse, classify, trust and decide.
