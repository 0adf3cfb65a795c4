//! Square's tests: its schedule, its proposals and draws, and what it scores.
use super::*;

/// Square with windows from 0.3 of the image on the rescaled schedule.
fn small_square(norm: Norm, eps: f64, queries: usize) -> Square {
    Square::new(SquareParams {
        eps,
        queries,
        p_init: 0.3,
        norm,
        rescale_schedule: true,
    })
}

/// Two grey 6x6 images and an objective that reports them misclassified from its
/// `fooled_at`-th query on.
fn grey_and_late(fooled_at: usize) -> (Tensor, MisclassifiesLate) {
    let x = Tensor::full(0.5f32, (2, 1, 6, 6), &candle_core::Device::Cpu).unwrap();
    let objective = MisclassifiesLate {
        queries: 0,
        fooled_at,
        fooling_point: None,
    };
    (x, objective)
}

#[test]
fn the_window_schedule_halves_at_the_papers_query_counts() {
    // 10,000 queries: p_init until query 10, then halved at 50, 200, 500, ...
    assert_eq!(window_share(0.8, 10, 10_000), 0.8);
    assert_eq!(window_share(0.8, 11, 10_000), 0.4);
    assert_eq!(window_share(0.8, 200, 10_000), 0.2);
    assert_eq!(window_share(0.8, 201, 10_000), 0.1);
    assert_eq!(window_share(0.8, 9_999, 10_000), 0.8 / 512.0);
    // rescaled: with 100 queries, query 1 is 100 of 10,000
    assert_eq!(window_share(0.8, 1, 100), 0.2);
}

/// Reports every image misclassified from its `fooled_at`-th query on, with a loss that
/// never rises (as an EOT average over other draws than the prediction's can fall).
struct MisclassifiesLate {
    queries: usize,
    fooled_at: usize,
    fooling_point: Option<Vec<f32>>,
}

impl Objective for MisclassifiesLate {
    fn loss(&mut self, x: &Tensor) -> Result<Tensor> {
        Ok(Tensor::zeros(x.dim(0)?, DType::F32, x.device())?)
    }

    fn succeeded(&mut self, x: &Tensor) -> Result<Option<Vec<bool>>> {
        self.queries += 1;
        let fooled = self.queries >= self.fooled_at;
        if fooled && self.fooling_point.is_none() {
            self.fooling_point = Some(x.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(Some(vec![fooled; x.dim(0)?]))
    }
}

/// A loss of each image alone: a fixed weighting of its pixels. An image counts as
/// misclassified once its loss passes `fooled_above`.
struct PerImage {
    weights: Vec<f32>,
    fooled_above: f32,
}

impl Objective for PerImage {
    fn loss(&mut self, x: &Tensor) -> Result<Tensor> {
        let w = Tensor::from_slice(&self.weights, (1, self.weights.len()), x.device())?;
        Ok(x.flatten_from(1)?.broadcast_mul(&w)?.sum(1)?)
    }

    fn succeeded(&mut self, x: &Tensor) -> Result<Option<Vec<bool>>> {
        let loss = self.loss(x)?.to_vec1::<f32>()?;
        Ok(Some(loss.iter().map(|&l| l > self.fooled_above).collect()))
    }
}

#[test]
fn an_image_is_attacked_the_same_whichever_images_are_attacked_with_it() {
    // rows 1 and 3 of a batch of 4, attacked alone, end where the whole batch's attack
    // takes them (as the cascade gives Square the survivors only), though rows 0 and 2
    // draw first in the whole batch and stop being queried once fooled
    let device = candle_core::Device::Cpu;
    let (rows, side) = (4, 6);
    let len = side * side;
    let pixels: Vec<f32> = (0..rows * len)
        .map(|k| ((k * 7) % 11) as f32 / 10.0)
        .collect();
    let x = Tensor::from_vec(pixels, (rows, 1, side, side), &device).unwrap();
    let weights: Vec<f32> = (0..len).map(|k| (k as f32 * 0.7).sin()).collect();
    for norm in [Norm::Linf, Norm::L2] {
        let square = small_square(norm, if norm == Norm::Linf { 0.1 } else { 0.5 }, 30);
        let mut objective = PerImage {
            weights: weights.clone(),
            fooled_above: 0.8,
        };
        let marked = |rows_of: Vec<usize>| Rng::new(5).for_batch_rows(rows_of, rows);
        let whole = square
            .perturb(&x, &mut objective, &mut marked((0..rows).collect()))
            .unwrap();
        let picked =
            Tensor::cat(&[x.narrow(0, 1, 1).unwrap(), x.narrow(0, 3, 1).unwrap()], 0).unwrap();
        let alone = square
            .perturb(&picked, &mut objective, &mut marked(vec![1, 3]))
            .unwrap();
        for (j, row) in [1, 3].into_iter().enumerate() {
            let values = |t: &Tensor, r: usize| {
                t.narrow(0, r, 1)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            };
            assert_eq!(values(&alone, j), values(&whole, row), "{norm}: row {row}");
            assert_ne!(
                values(&alone, j),
                values(&x, row),
                "{norm}: row {row} never moved"
            );
        }
    }
}

/// A per-image loss (a fixed weighting of the pixels) with a threshold per batch row above
/// which the image counts as misclassified, counting the images it scores; with `by_rows`
/// it scores part of its batch when asked.
struct Counted {
    weights: Vec<f32>,
    fooled_above: Vec<f32>,
    by_rows: bool,
    images_scored: usize,
}

impl Counted {
    fn scored(&mut self, x: &Tensor, rows: &[usize]) -> Result<(Tensor, Option<Vec<bool>>)> {
        self.images_scored += rows.len();
        let w = Tensor::from_slice(&self.weights, (1, self.weights.len()), x.device())?;
        let loss = x.flatten_from(1)?.broadcast_mul(&w)?.sum(1)?;
        let values = loss.to_vec1::<f32>()?;
        let fooled = rows
            .iter()
            .zip(values)
            .map(|(&r, l)| l > self.fooled_above[r])
            .collect();
        Ok((loss, Some(fooled)))
    }
}

impl Objective for Counted {
    fn loss(&mut self, x: &Tensor) -> Result<Tensor> {
        Ok(self.score(x)?.0)
    }

    fn score(&mut self, x: &Tensor) -> Result<(Tensor, Option<Vec<bool>>)> {
        let rows: Vec<usize> = (0..x.dim(0)?).collect();
        self.scored(x, &rows)
    }

    fn score_rows(
        &mut self,
        x: &Tensor,
        rows: &[usize],
    ) -> Result<Option<(Tensor, Option<Vec<bool>>)>> {
        if !self.by_rows {
            return Ok(None);
        }
        self.scored(x, rows).map(Some)
    }
}

#[test]
fn square_scores_only_the_images_still_to_fool_where_the_objective_can() {
    // image 0 never breaks, image 3 breaks at its start, images 1 and 2 maybe on the way:
    // scored on the images still to fool, Square ends where scoring the whole batch takes
    // it, for fewer image evaluations
    let device = candle_core::Device::Cpu;
    let (rows, side) = (4, 6);
    let pixels: Vec<f32> = (0..rows * side * side)
        .map(|k| ((k * 5) % 13) as f32 / 12.0)
        .collect();
    let x = Tensor::from_vec(pixels, (rows, 1, side, side), &device).unwrap();
    let weights: Vec<f32> = (0..side * side).map(|k| (k as f32 * 0.9).cos()).collect();
    for norm in [Norm::Linf, Norm::L2] {
        let square = small_square(norm, if norm == Norm::Linf { 0.1 } else { 0.5 }, 30);
        let run = |by_rows: bool| {
            let mut objective = Counted {
                weights: weights.clone(),
                fooled_above: vec![f32::INFINITY, 0.3, 0.6, f32::NEG_INFINITY],
                by_rows,
                images_scored: 0,
            };
            let adversarial = square
                .perturb(&x, &mut objective, &mut Rng::new(5))
                .unwrap();
            let values = adversarial.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (values, objective.images_scored)
        };
        let ((whole, whole_scored), (parts, parts_scored)) = (run(false), run(true));
        assert_eq!(parts, whole, "{norm}");
        assert_eq!(whole_scored, rows * 31, "{norm}");
        assert!(parts_scored <= 4 + 3 * 30, "{norm}: {parts_scored}");
    }
}

#[test]
fn square_makes_as_many_proposals_as_queries_after_its_start() {
    // AutoAttack's `for i_iter in range(n_queries)` after the initial point: an image that
    // never breaks is evaluated queries + 1 times
    for norm in [Norm::Linf, Norm::L2] {
        let (x, mut objective) = grey_and_late(usize::MAX);
        small_square(norm, 0.1, 7)
            .perturb(&x, &mut objective, &mut Rng::new(1))
            .unwrap();
        assert_eq!(objective.queries, 8, "{norm}");
    }
}

#[test]
fn a_proposal_that_misclassifies_is_kept_even_when_its_loss_does_not_rise() {
    for norm in [Norm::Linf, Norm::L2] {
        let (x, mut objective) = grey_and_late(3);
        let adversarial = small_square(norm, 0.1, 20)
            .perturb(&x, &mut objective, &mut Rng::new(7))
            .unwrap();
        let fooling_point = objective.fooling_point.expect("the objective was fooled");
        assert_eq!(
            adversarial.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            fooling_point,
            "{norm}: the misclassifying proposal of query 3 was dropped"
        );
        assert_eq!(
            objective.queries, 3,
            "{norm}: a fooled image was queried again"
        );
    }
}

/// [`PerImage`] with a windowed score that checks Square's side of the contract: every image
/// it scores differs from its base image (the start, then each proposal kept) only inside the
/// window Square names, and what Square keeps becomes the base. Counts the queries it scored.
struct CheckedWindows {
    inner: PerImage,
    queries: std::cell::Cell<usize>,
}

impl Objective for CheckedWindows {
    fn loss(&mut self, x: &Tensor) -> Result<Tensor> {
        self.inner.loss(x)
    }

    fn succeeded(&mut self, x: &Tensor) -> Result<Option<Vec<bool>>> {
        self.inner.succeeded(x)
    }

    fn windowed(&self, base: &Tensor) -> Result<Option<Box<dyn WindowedScore + '_>>> {
        let (_, c, h, w) = base.dims4()?;
        Ok(Some(Box::new(Checker {
            of: self,
            base: base.flatten_all()?.to_vec1::<f32>()?,
            dims: (c, h, w),
            last: None,
        })))
    }
}

struct Checker<'a> {
    of: &'a CheckedWindows,
    base: Vec<f32>,
    dims: (usize, usize, usize),
    last: Option<(Vec<usize>, Vec<f32>)>,
}

impl WindowedScore for Checker<'_> {
    fn score_rows(
        &mut self,
        images: &Tensor,
        rows: &[usize],
        windows: &[Window],
    ) -> Result<(Tensor, Option<Vec<bool>>)> {
        let values = images.flatten_all()?.to_vec1::<f32>()?;
        let (c, h, w) = self.dims;
        let len = c * h * w;
        for (j, (&row, v)) in rows.iter().zip(windows).enumerate() {
            for (k, (new, old)) in values[j * len..(j + 1) * len]
                .iter()
                .zip(&self.base[row * len..(row + 1) * len])
                .enumerate()
            {
                let (y, x) = ((k / w) % h, k % w);
                let inside =
                    (v.top..v.top + v.side).contains(&y) && (v.left..v.left + v.side).contains(&x);
                assert!(
                    inside || new == old,
                    "row {row}: ({y}, {x}) changed outside {v:?}"
                );
            }
        }
        self.of.queries.set(self.of.queries.get() + 1);
        self.last = Some((rows.to_vec(), values));
        let mut inner = PerImage {
            weights: self.of.inner.weights.clone(),
            fooled_above: self.of.inner.fooled_above,
        };
        Ok((inner.loss(images)?, inner.succeeded(images)?))
    }

    fn keep(&mut self, rows: &[usize]) -> Result<()> {
        let (c, h, w) = self.dims;
        let len = c * h * w;
        let (scored, values) = self.last.as_ref().expect("keep after a score");
        for &row in rows {
            let j = scored.binary_search(&row).expect("a kept row was scored");
            self.base[row * len..(row + 1) * len].copy_from_slice(&values[j * len..(j + 1) * len]);
        }
        Ok(())
    }
}

#[test]
fn square_scores_by_window_under_linf_and_ends_where_whole_images_take_it() {
    let device = candle_core::Device::Cpu;
    // two channels: a window changes both
    let (rows, channels, side) = (3, 2, 6);
    let pixels: Vec<f32> = (0..rows * channels * side * side)
        .map(|k| ((k * 5) % 13) as f32 / 12.0)
        .collect();
    let x = Tensor::from_vec(pixels, (rows, channels, side, side), &device).unwrap();
    let weights: Vec<f32> = (0..channels * side * side)
        .map(|k| (k as f32 * 0.9).cos())
        .collect();
    let per_image = || PerImage {
        weights: weights.clone(),
        fooled_above: 1.5,
    };
    for norm in [Norm::Linf, Norm::L2] {
        let square = small_square(norm, if norm == Norm::Linf { 0.1 } else { 0.5 }, 40);
        let whole = square
            .perturb(&x, &mut per_image(), &mut Rng::new(3))
            .unwrap();
        let mut checked = CheckedWindows {
            inner: per_image(),
            queries: std::cell::Cell::new(0),
        };
        let windowed = square.perturb(&x, &mut checked, &mut Rng::new(3)).unwrap();
        let values = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(values(&windowed), values(&whole), "{norm}");
        // L2 proposals change whole images: never scored by window
        assert_eq!(checked.queries.get() > 0, norm == Norm::Linf, "{norm}");
    }
}
