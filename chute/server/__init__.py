"""chute.server"""
