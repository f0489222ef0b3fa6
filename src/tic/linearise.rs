//! Inverse of the scanner's log compression: grey level to linear echo power.
//!
//! A scanner maps echo power `P` (relative to full scale, so `P <= 1`) to a grey level
//! `g = 255 * (10 log10(P) + DR) / DR` over a dynamic range of `DR` dB, clipping below
//! `-DR` dB to 0. The inverse is `P = 10^((g/255 * DR - DR) / 10)`: grey 255 is power 1
//! and grey 0 is power `10^(-DR/10)`. Averaging `P` rather than `g` keeps the curve
//! proportional to the microbubble concentration, which the bolus models assume.

use super::TicError;

/// Smallest accepted dynamic range in dB.
pub const MIN_DYNAMIC_RANGE_DB: f64 = 1.0;
/// Largest accepted dynamic range in dB: no scanner display spans more.
pub const MAX_DYNAMIC_RANGE_DB: f64 = 200.0;

/// A 256-entry table from grey level to linear power for one dynamic range.
#[derive(Clone, Debug)]
pub struct PowerTable {
    dynamic_range_db: f64,
    power: [f64; 256],
}

impl PowerTable {
    /// Builds the table for `dynamic_range_db`.
    ///
    /// Errors with [`TicError::Setting`] unless the range is finite and within
    /// [`MIN_DYNAMIC_RANGE_DB`]..=[`MAX_DYNAMIC_RANGE_DB`].
    pub fn new(dynamic_range_db: f64) -> Result<PowerTable, TicError> {
        let valid = (MIN_DYNAMIC_RANGE_DB..=MAX_DYNAMIC_RANGE_DB).contains(&dynamic_range_db);
        if !valid {
            return Err(TicError::Setting(format!(
                "dynamic range {dynamic_range_db} dB is out of range: give a value from \
                 {MIN_DYNAMIC_RANGE_DB} to {MAX_DYNAMIC_RANGE_DB} dB"
            )));
        }
        let mut power = [0.0; 256];
        for (grey, p) in power.iter_mut().enumerate() {
            *p = grey_to_power(grey as f64, dynamic_range_db);
        }
        Ok(PowerTable {
            dynamic_range_db,
            power,
        })
    }

    pub fn dynamic_range_db(&self) -> f64 {
        self.dynamic_range_db
    }

    /// Linear power of grey level `grey`.
    #[inline]
    pub fn power(&self, grey: u8) -> f64 {
        self.power[usize::from(grey)]
    }
}

/// `10^((grey/255 * DR - DR) / 10)` for a grey level in 0..=255.
pub fn grey_to_power(grey: f64, dynamic_range_db: f64) -> f64 {
    let decibels = grey / 255.0 * dynamic_range_db - dynamic_range_db;
    10f64.powf(decibels / 10.0)
}

/// Grey level of linear power `power` under log compression: the inverse of
/// [`grey_to_power`], without rounding or clipping.
pub fn power_to_grey(power: f64, dynamic_range_db: f64) -> f64 {
    255.0 * (10.0 * power.log10() + dynamic_range_db) / dynamic_range_db
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_end_points() {
        let table = PowerTable::new(60.0).unwrap();
        assert_eq!(table.power(255), 1.0);
        assert!((table.power(0) - 1e-6).abs() < 1e-18);
    }

    #[test]
    fn table_inverts_compression() {
        let table = PowerTable::new(45.0).unwrap();
        for grey in [1u8, 17, 128, 200, 254] {
            let back = power_to_grey(table.power(grey), 45.0);
            assert!(
                (back - f64::from(grey)).abs() < 1e-9,
                "grey {grey} -> {back}"
            );
        }
    }

    #[test]
    fn half_scale_is_minus_half_range() {
        // Grey 127.5 is -DR/2 dB, so -30 dB = 1e-3 for a 60 dB range.
        assert!((grey_to_power(127.5, 60.0) - 1e-3).abs() < 1e-15);
    }

    #[test]
    fn table_rejects_bad_range() {
        assert!(PowerTable::new(0.0).is_err());
        assert!(PowerTable::new(-10.0).is_err());
        assert!(PowerTable::new(f64::NAN).is_err());
        assert!(PowerTable::new(500.0).is_err());
    }
}
