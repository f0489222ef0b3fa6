//! Where the ultrasound views sit inside the scanner's screen.
