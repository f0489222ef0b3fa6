//! Integration tests of the ceus-edge binary and library.
mod phantom;
mod y4m_png;
