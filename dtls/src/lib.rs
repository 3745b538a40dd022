//! DTLS 1.2 PSK for Ferrite (being built).
