"""chute.artifacts"""
