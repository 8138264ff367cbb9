//! The DataJump workflow scheduler.
