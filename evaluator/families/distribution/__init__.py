"""Distribution distances to the reference: JSD, MMD, Fréchet distance."""
