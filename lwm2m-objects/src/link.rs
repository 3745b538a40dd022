//! PLACEHOLDER CoRE link format: being written in this session; replaced before commit.
