//! Dense linear algebra for the small symmetric systems of the logistic fits (a few dozen
//! parameters at most): Cholesky factorisation, solve and inverse. Matrices are row-major
//! `Vec<f64>` of `p * p` entries.

/// Lower-triangular Cholesky factor L of a symmetric positive definite matrix A = L L^T.
#[derive(Debug, Clone)]
pub struct Cholesky {
    size: usize,
    lower: Vec<f64>,
}

impl Cholesky {
    /// Factors `matrix` (`size` x `size`, row-major). Returns the index of the first pivot
    /// that is not positive relative to `relative_tolerance` times its diagonal entry, which
    /// means that column depends linearly on the ones before it.
    pub fn new(matrix: &[f64], size: usize, relative_tolerance: f64) -> Result<Cholesky, usize> {
        let mut lower = vec![0.0; size * size];
        for j in 0..size {
            let mut pivot = matrix[j * size + j];
            for k in 0..j {
                pivot -= lower[j * size + k] * lower[j * size + k];
            }
            let scale = matrix[j * size + j].abs();
            if !pivot.is_finite() || pivot <= relative_tolerance * scale {
                return Err(j);
            }
            let diagonal = pivot.sqrt();
            lower[j * size + j] = diagonal;
            for i in (j + 1)..size {
                let mut value = matrix[i * size + j];
                for k in 0..j {
                    value -= lower[i * size + k] * lower[j * size + k];
                }
                lower[i * size + j] = value / diagonal;
            }
        }
        Ok(Cholesky { size, lower })
    }

    /// Solves A x = b.
    pub fn solve(&self, b: &[f64]) -> Vec<f64> {
        let n = self.size;
        let mut y = b.to_vec();
        for i in 0..n {
            for k in 0..i {
                y[i] -= self.lower[i * n + k] * y[k];
            }
            y[i] /= self.lower[i * n + i];
        }
        for i in (0..n).rev() {
            for k in (i + 1)..n {
                y[i] -= self.lower[k * n + i] * y[k];
            }
            y[i] /= self.lower[i * n + i];
        }
        y
    }

    /// Returns A^-1, row-major.
    pub fn inverse(&self) -> Vec<f64> {
        let n = self.size;
        let mut inverse = vec![0.0; n * n];
        let mut unit = vec![0.0; n];
        for j in 0..n {
            unit.iter_mut().for_each(|v| *v = 0.0);
            unit[j] = 1.0;
            let column = self.solve(&unit);
            for i in 0..n {
                inverse[i * n + j] = column[i];
            }
        }
        inverse
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_of_two_by_two() {
        let a = [4.0, 2.0, 2.0, 3.0];
        let inverse = Cholesky::new(&a, 2, 1e-12).unwrap().inverse();
        let expected = [3.0 / 8.0, -2.0 / 8.0, -2.0 / 8.0, 4.0 / 8.0];
        for (x, e) in inverse.iter().zip(expected) {
            assert!((x - e).abs() < 1e-15);
        }
    }

    #[test]
    fn singular_matrix_reports_column() {
        let a = [1.0, 2.0, 2.0, 4.0];
        assert_eq!(Cholesky::new(&a, 2, 1e-12).unwrap_err(), 1);
    }
}
