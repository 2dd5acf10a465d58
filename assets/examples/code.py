def moving_average(values: list[float], window: int = 3) -> list[float]:
    """Mean of each run of `window` consecutive values."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    sums = [0.0]
    for v in values:
        sums.append(sums[-1] + v)
    return [(sums[i + window] - sums[i]) / window for i in range(len(values) - window + 1)]


print(moving_average([1, 2, 3, 4, 5, 6], window=2))
