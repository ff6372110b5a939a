package presets

// SetMaxExtendsDepth lifts or lowers the limit on extends chains for a
// test; it returns the function that restores it.
func SetMaxExtendsDepth(n int) (restore func()) {
	old := maxExtendsDepth
	maxExtendsDepth = n
	return func() { maxExtendsDepth = old }
}
