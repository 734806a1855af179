"""chute.executors"""
