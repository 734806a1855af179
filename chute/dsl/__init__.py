"""chute.dsl"""
