module github.com/terminator-proxy/terminator

go 1.26.8

require (
	github.com/fsnotify/fsnotify v1.10.1
	github.com/smallstep/pkcs7 v0.2.3
	github.com/youmark/pkcs8 v0.0.0-20240726163527-a2c0da244d78
	gopkg.in/yaml.v3 v3.0.1
	software.sslmate.com/src/go-pkcs12 v0.7.4
)

require (
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
