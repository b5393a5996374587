"""Learning from feedback: query types, rating scales, decayed profiles per (route, query type, model), and the
bandit that the learned routing strategy picks targets with."""
